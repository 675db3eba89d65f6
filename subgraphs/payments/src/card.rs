//! Card details, checked at the edge: the number by the Luhn checksum and its brand's
//! length, the expiry against today, the security code's length against the brand. The
//! number and the code live only in this value, which prints neither (`Debug` is redacted).

use chrono::Datelike;
use kernel::{AppError, AppResult};

/// A card's brand, from its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brand {
    /// Visa: 4…
    Visa,
    /// Mastercard: 51–55, 2221–2720.
    Mastercard,
    /// American Express: 34, 37 (15 digits, four-digit code).
    Amex,
    /// Discover: 6011, 65, 644–649.
    Discover,
    /// Any other issuer.
    Other,
}

impl Brand {
    /// The brand's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "VISA",
            Brand::Mastercard => "MASTERCARD",
            Brand::Amex => "AMEX",
            Brand::Discover => "DISCOVER",
            Brand::Other => "OTHER",
        }
    }

    fn of(digits: &str) -> Brand {
        let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
        match () {
            _ if digits.starts_with('4') => Brand::Visa,
            _ if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) => {
                Brand::Mastercard
            }
            _ if matches!(prefix(2), 34 | 37) => Brand::Amex,
            _ if prefix(4) == 6011 || prefix(2) == 65 || (644..=649).contains(&prefix(3)) => {
                Brand::Discover
            }
            _ => Brand::Other,
        }
    }
}

/// A card as the customer typed it, checked.
pub struct Card {
    number: String,
    /// Brand.
    pub brand: Brand,
    /// Expiry month (1–12).
    pub exp_month: u32,
    /// Expiry year (four digits).
    pub exp_year: i32,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Card({} ending {}, {:02}/{})",
            self.brand.as_str(),
            self.last4(),
            self.exp_month,
            self.exp_year
        )
    }
}

/// The Luhn checksum over a string of digits.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

impl Card {
    /// Checks what a customer typed, as of `today`. Spaces and dashes in the number are
    /// ignored; the year may have two or four digits. The code is checked, then dropped.
    pub fn parse(
        number: &str,
        exp_month: i32,
        exp_year: i32,
        cvc: &str,
        today: chrono::NaiveDate,
    ) -> AppResult<Card> {
        let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AppError::bad_input("the card number may hold only digits"));
        }
        if !(12..=19).contains(&digits.len()) || !luhn(&digits) {
            return Err(AppError::bad_input("the card number is not valid"));
        }
        let brand = Brand::of(&digits);
        let length_ok = match brand {
            Brand::Amex => digits.len() == 15,
            Brand::Visa => matches!(digits.len(), 13 | 16 | 19),
            Brand::Mastercard => digits.len() == 16,
            Brand::Discover => (16..=19).contains(&digits.len()),
            Brand::Other => true,
        };
        if !length_ok {
            return Err(AppError::bad_input("the card number is not valid"));
        }
        if !(1..=12).contains(&exp_month) {
            return Err(AppError::bad_input("the expiry month must be between 1 and 12"));
        }
        let exp_year = match exp_year {
            0..=99 => 2000 + exp_year,
            2000..=2199 => exp_year,
            _ => return Err(AppError::bad_input("the expiry year is not valid")),
        };
        // A card is good through the last day of its expiry month.
        let expired = (exp_year, exp_month as u32) < (today.year(), today.month());
        if expired {
            return Err(AppError::bad_input("the card has expired"));
        }
        if exp_year > today.year() + 20 {
            return Err(AppError::bad_input("the expiry year is not valid"));
        }
        let code_length = if brand == Brand::Amex { 4 } else { 3 };
        if cvc.len() != code_length || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AppError::bad_input(format!(
                "the security code must be {code_length} digits for this card"
            )));
        }
        Ok(Card { number: digits, brand, exp_month: exp_month as u32, exp_year })
    }

    /// The last four digits.
    pub fn last4(&self) -> &str {
        &self.number[self.number.len() - 4..]
    }

    /// The full number, for the processor only.
    pub(crate) fn number(&self) -> &str {
        &self.number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    fn code(result: AppResult<Card>) -> String {
        match result {
            Err(AppError::BadUserInput(message)) => message,
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn good_cards_are_read_with_their_brand_and_never_printed() {
        let card = Card::parse("4242 4242 4242 4242", 12, 30, "123", today()).unwrap();
        assert_eq!((card.brand, card.last4(), card.exp_year), (Brand::Visa, "4242", 2030));
        assert_eq!(format!("{card:?}"), "Card(VISA ending 4242, 12/2030)");
        let amex = Card::parse("3782-822463-10005", 1, 2027, "1234", today()).unwrap();
        assert_eq!(amex.brand, Brand::Amex);
        assert_eq!(
            Card::parse("5555555555554444", 11, 2026, "000", today()).unwrap().brand,
            Brand::Mastercard
        );
    }

    #[test]
    fn bad_cards_are_refused_with_a_reason() {
        assert!(
            code(Card::parse("4242 4242 4242 4241", 12, 30, "123", today())).contains("not valid")
        );
        assert!(code(Card::parse("4242x", 12, 30, "123", today())).contains("only digits"));
        assert!(
            code(Card::parse("4242424242424242", 10, 2026, "123", today())).contains("expired")
        );
        assert!(code(Card::parse("4242424242424242", 13, 2030, "123", today())).contains("month"));
        assert!(
            code(Card::parse("4242424242424242", 12, 2030, "12", today())).contains("3 digits")
        );
        assert!(
            code(Card::parse("378282246310005", 12, 2030, "123", today())).contains("4 digits")
        );
        assert!(code(Card::parse("", 12, 2030, "123", today())).contains("only digits"));
    }
}
