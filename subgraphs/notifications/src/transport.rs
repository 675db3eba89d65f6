//! Where mail goes: an SMTP server (when `notifications.smtp_url` is set), or `.eml` files in
//! a folder (the embedded default: open them with any mail program).

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, header};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// A mail to send.
pub struct Outgoing<'a> {
    /// Its id: the `Message-ID` and the file name.
    pub id: uuid::Uuid,
    /// Sender.
    pub from: &'a str,
    /// Recipient address.
    pub to: &'a str,
    /// Recipient name.
    pub to_name: &'a str,
    /// Subject.
    pub subject: &'a str,
    /// Plain-text part.
    pub text: &'a str,
    /// HTML part.
    pub html: &'a str,
}

/// How mail leaves.
pub enum Transport {
    /// Written as `<id>.eml` into this folder.
    Folder(PathBuf),
    /// Sent to an SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    /// A transport for `smtp_url` (`smtp://host:port`, `smtp://user:pass@host:587?tls=required`,
    /// `smtps://…`) when given, else the folder. The URL's error never repeats the URL (it may
    /// hold a password).
    pub fn new(smtp_url: Option<&str>, folder: PathBuf) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => {
                let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|_| anyhow::anyhow!("notifications.smtp_url is not a valid SMTP URL"))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build();
                Ok(Transport::Smtp(smtp))
            }
            None => Ok(Transport::Folder(folder)),
        }
    }

    /// What this transport is, for logs (never the URL).
    pub fn describe(&self) -> String {
        match self {
            Transport::Folder(dir) => format!(".eml files in {}", dir.display()),
            Transport::Smtp(_) => "SMTP".into(),
        }
    }

    /// Sends `mail`. An error says why, to be recorded and retried.
    pub async fn send(&self, mail: &Outgoing<'_>) -> Result<(), String> {
        let message = build(mail)?;
        match self {
            Transport::Folder(dir) => {
                tokio::fs::create_dir_all(dir).await.map_err(|e| format!("mail folder: {e}"))?;
                // Written whole, then renamed: a reader never sees half a message.
                let partial = dir.join(format!(".{}.eml.partial", mail.id));
                tokio::fs::write(&partial, message.formatted())
                    .await
                    .map_err(|e| format!("writing the mail: {e}"))?;
                tokio::fs::rename(&partial, dir.join(format!("{}.eml", mail.id)))
                    .await
                    .map_err(|e| format!("writing the mail: {e}"))
            }
            Transport::Smtp(smtp) => {
                smtp.send(message).await.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    }
}

fn build(mail: &Outgoing<'_>) -> Result<Message, String> {
    let from: Mailbox = mail.from.parse().map_err(|e| format!("the sender address: {e}"))?;
    let to = Mailbox::new(
        Some(mail.to_name.to_string()).filter(|n| !n.is_empty()),
        mail.to.parse().map_err(|e| format!("the recipient address: {e}"))?,
    );
    let domain = from.email.domain().to_string();
    Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject)
        .message_id(Some(format!("<{}@{domain}>", mail.id)))
        .multipart(MultiPart::alternative_plain_html(mail.text.to_string(), mail.html.to_string()))
        .map_err(|e| format!("building the mail: {e}"))
        .map(|mut message| {
            // Mail about an order is transactional: no auto-replies, please.
            message.headers_mut().insert_raw(header::HeaderValue::new(
                header::HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".into(),
            ));
            message
        })
}
