//! Catalog values parsed at the edge: once built, a [`Sku`], [`Slug`], [`Stars`] or
//! [`ProductDetails`] is valid, so the rest of the catalog never re-checks them.

use kernel::AppError;

/// A stock-keeping unit: 2–64 characters of `A–Z`, `0–9` and `-`, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// Parses a SKU (case-insensitive).
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let sku = raw.trim().to_ascii_uppercase();
        let valid = (2..=64).contains(&sku.len())
            && sku.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
            && !sku.starts_with('-');
        if valid {
            Ok(Self(sku))
        } else {
            Err(AppError::bad_input("`sku` must be 2–64 letters, digits or dashes"))
        }
    }

    /// The normalised SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A URL-safe name: lower-case words of letters and digits joined by single dashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    /// Parses a slug.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let slug = raw.trim();
        let valid = (1..=120).contains(&slug.len())
            && slug.split('-').all(|w| {
                !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        if valid {
            Ok(Self(slug.to_string()))
        } else {
            Err(AppError::bad_input(
                "`slug` must be lower-case letters and digits in words joined by single dashes",
            ))
        }
    }

    /// Derives a slug from a display name ("Trail Runner 2" → "trail-runner-2").
    pub fn from_name(name: &str) -> Result<Self, AppError> {
        let words: Vec<String> = name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        Self::parse(&words.join("-"))
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A review rating: 1 to 5 stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stars(i32);

impl Stars {
    /// Parses a rating.
    pub fn parse(raw: i32) -> Result<Self, AppError> {
        if (1..=5).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(AppError::bad_input(format!("`rating` must be between 1 and 5, not {raw}")))
        }
    }

    /// The number of stars.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// Trimmed text whose length (in characters) lies within bounds.
pub fn bounded_text(field: &str, raw: &str, min: usize, max: usize) -> Result<String, AppError> {
    let text = raw.trim();
    let len = text.chars().count();
    if len < min || len > max {
        return Err(AppError::bad_input(if min > 0 && len == 0 {
            format!("`{field}` must not be empty")
        } else {
            format!("`{field}` must be {min}–{max} characters")
        }));
    }
    Ok(text.to_string())
}

/// A product image: an absolute http(s) URL and its alternative text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Image {
    /// Where the image is.
    pub url: String,
    /// What it shows, for screen readers.
    pub alt: String,
}

/// A named product attribute such as `color: navy`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value.
    pub value: String,
}

/// Parses a list of images.
pub fn parse_images(raw: Vec<(String, Option<String>)>) -> Result<Vec<Image>, AppError> {
    if raw.len() > 20 {
        return Err(AppError::bad_input("a product has at most 20 images"));
    }
    raw.into_iter()
        .map(|(url, alt)| {
            let url = url.trim();
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok || url.len() > 2048 || url.contains(char::is_whitespace) {
                return Err(AppError::bad_input(format!("`{url}` is not an http(s) image URL")));
            }
            let alt = bounded_text("alt", alt.as_deref().unwrap_or(""), 0, 200)?;
            Ok(Image { url: url.to_string(), alt })
        })
        .collect()
}

/// Parses a list of attributes; names must be unique.
pub fn parse_attributes(raw: Vec<(String, String)>) -> Result<Vec<Attribute>, AppError> {
    if raw.len() > 50 {
        return Err(AppError::bad_input("a product has at most 50 attributes"));
    }
    let mut out: Vec<Attribute> = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let name = bounded_text("attribute name", &name, 1, 60)?;
        let value = bounded_text("attribute value", &value, 1, 200)?;
        if out.iter().any(|a| a.name.eq_ignore_ascii_case(&name)) {
            return Err(AppError::bad_input(format!("attribute `{name}` is given twice")));
        }
        out.push(Attribute { name, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_and_slugs_are_normalised_or_refused() {
        assert_eq!(Sku::parse(" ab-12 ").unwrap().as_str(), "AB-12");
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse("'; DROP").is_err());
        assert_eq!(Slug::from_name("Trail Runner 2!").unwrap().as_str(), "trail-runner-2");
        assert!(Slug::parse("Trail--runner").is_err());
        assert!(Slug::parse("").is_err());
    }

    #[test]
    fn ratings_are_one_to_five() {
        assert!(Stars::parse(0).is_err());
        assert!(Stars::parse(6).is_err());
        assert_eq!(Stars::parse(5).unwrap().get(), 5);
    }

    #[test]
    fn attributes_and_images_are_checked() {
        assert!(
            parse_attributes(vec![("Color".into(), "red".into()), ("color".into(), "blue".into())])
                .is_err()
        );
        assert!(parse_images(vec![("javascript:alert(1)".into(), None)]).is_err());
        assert_eq!(parse_images(vec![("https://x.test/a.jpg".into(), None)]).unwrap()[0].alt, "");
    }
}
