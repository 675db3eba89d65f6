//! A simulated card processor that behaves like a real one: cards are exchanged for tokens,
//! authorisations are answered by the card (approve, decline, insufficient funds, or a
//! transient failure that succeeds when retried), and every call is idempotent by its key.
//!
//! Test cards (any future expiry, any code of the right length):
//!
//! | number | answer |
//! |---|---|
//! | 4242 4242 4242 4242, 5555 5555 5555 4444, 3782 822463 10005, any other valid number | approved |
//! | 4000 0000 0000 0002 | declined (`CARD_DECLINED`) |
//! | 4000 0000 0000 9995 | declined (`INSUFFICIENT_FUNDS`) |
//! | 4000 0000 0000 0119 | fails transiently twice per authorisation, then approves |

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use entities::payments::card_token;
use kernel::{AppError, AppResult};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::card::Card;

/// How the simulated processor answers for a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Approves.
    Approve,
    /// Declines.
    Decline,
    /// Declines for insufficient funds.
    InsufficientFunds,
    /// Fails twice per authorisation, then approves.
    Transient,
}

impl Behaviour {
    fn of(number: &str) -> Behaviour {
        match number {
            "4000000000000002" => Behaviour::Decline,
            "4000000000009995" => Behaviour::InsufficientFunds,
            "4000000000000119" => Behaviour::Transient,
            _ => Behaviour::Approve,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Behaviour::Approve => "APPROVE",
            Behaviour::Decline => "DECLINE",
            Behaviour::InsufficientFunds => "INSUFFICIENT_FUNDS",
            Behaviour::Transient => "TRANSIENT",
        }
    }

    fn parse(text: &str) -> Behaviour {
        match text {
            "DECLINE" => Behaviour::Decline,
            "INSUFFICIENT_FUNDS" => Behaviour::InsufficientFunds,
            "TRANSIENT" => Behaviour::Transient,
            _ => Behaviour::Approve,
        }
    }
}

/// The processor's answer to an authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Money is held on the card under this reference.
    Approved(String),
    /// Refused, with the reason code.
    Declined(&'static str),
}

/// The processor could not answer this time; the same call may succeed later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable;

/// Failures per transient authorisation before it succeeds.
const TRANSIENT_FAILURES: u32 = 2;

/// The simulated processor. Its vault is the `processor_tokens` table; its memory of calls
/// (for idempotency and transient failures) lives in the process, as a real processor's
/// would live on its side.
#[derive(Default)]
pub struct Processor {
    answers: Mutex<HashMap<String, Answer>>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl Processor {
    /// Exchanges a card for a token. The number goes no further than this call.
    pub async fn tokenize<C: ConnectionTrait>(&self, db: &C, card: &Card) -> AppResult<String> {
        let token = format!("tok_{}", uuid::Uuid::new_v4().simple());
        card_token::Entity::insert(card_token::ActiveModel {
            token: Set(token.clone()),
            behaviour: Set(Behaviour::of(card.number()).as_str().to_string()),
            created_at: Set(Utc::now()),
        })
        .exec_without_returning(db)
        .await?;
        Ok(token)
    }

    /// Authorises `amount_minor` on the card behind `token`; the same `key` always gets the
    /// same answer.
    pub async fn authorize<C: ConnectionTrait>(
        &self,
        db: &C,
        token: &str,
        amount_minor: i64,
        key: &str,
    ) -> AppResult<Result<Answer, Unavailable>> {
        if let Some(answer) = self.answers.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(Ok(answer.clone()));
        }
        let row = card_token::Entity::find_by_id(token.to_string())
            .one(db)
            .await?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("unknown processor token")))?;
        let answer = match Behaviour::parse(&row.behaviour) {
            Behaviour::Approve => Answer::Approved(reference()),
            Behaviour::Decline => Answer::Declined("CARD_DECLINED"),
            Behaviour::InsufficientFunds => Answer::Declined("INSUFFICIENT_FUNDS"),
            Behaviour::Transient => {
                let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
                let count = attempts.entry(key.to_string()).or_default();
                *count += 1;
                if *count <= TRANSIENT_FAILURES {
                    return Ok(Err(Unavailable));
                }
                Answer::Approved(reference())
            }
        };
        tracing::debug!(amount_minor, ?answer, "processor answered");
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), answer.clone());
        Ok(Ok(answer))
    }
}

fn reference() -> String {
    format!("auth_{}", uuid::Uuid::new_v4().simple())
}
