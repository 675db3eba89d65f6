//! Identity values parsed at the edge: an [`Email`] is normalised and well-formed (the
//! kernel's, as orders take guests' addresses too), a [`Password`] meets the policy, a
//! display name is within bounds.

use kernel::AppError;
use secrecy::{ExposeSecret, SecretString};

pub use kernel::email::Email;

/// A password that meets the policy: 10–128 characters, with a letter and a digit or symbol,
/// not containing the e-mail's local part.
pub struct Password(SecretString);

impl Password {
    /// Parses a new password for `email`.
    pub fn parse(raw: &str, email: &Email) -> Result<Self, AppError> {
        let len = raw.chars().count();
        if len < 10 {
            return Err(AppError::bad_input("password must be at least 10 characters"));
        }
        if len > 128 {
            return Err(AppError::bad_input("password must be at most 128 characters"));
        }
        let has_letter = raw.chars().any(char::is_alphabetic);
        let has_other = raw.chars().any(|c| !c.is_alphabetic());
        if !has_letter || !has_other {
            return Err(AppError::bad_input(
                "password must contain a letter and a digit or symbol",
            ));
        }
        let local = email.as_str().split('@').next().unwrap_or_default();
        if local.len() >= 4 && raw.to_lowercase().contains(local) {
            return Err(AppError::bad_input("password must not contain your e-mail address"));
        }
        Ok(Self(SecretString::from(raw.to_string())))
    }

    /// The password, for hashing only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A display name: 1–100 characters.
pub fn display_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    match name.chars().count() {
        0 => Err(AppError::bad_input("`name` must not be empty")),
        1..=100 => Ok(name.to_string()),
        _ => Err(AppError::bad_input("`name` must be at most 100 characters")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy() {
        let email = Email::parse("ada@example.com").unwrap();
        assert!(Password::parse("short1", &email).is_err());
        assert!(Password::parse("onlyletterslong", &email).is_err());
        assert!(Password::parse("1234567890", &email).is_err());
        assert!(
            Password::parse("my-ada-password", &email).is_ok(),
            "local part shorter than 4 is allowed"
        );
        let long_local = Email::parse("adalovelace@example.com").unwrap();
        assert!(Password::parse("adalovelace-1", &long_local).is_err());
        assert!(Password::parse("correct horse 9", &email).is_ok());
    }
}
