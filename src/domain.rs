//! Checked request values ("parse, don't validate"): once a [`UserName`], [`Password`] or
//! [`AuthorFields`] exists, it is valid, and nothing downstream checks again.

use secrecy::{ExposeSecret, SecretString};

/// A value that is well-formed JSON but not acceptable (answered with 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidValue {
    /// snake_case error code, e.g. `invalid_name`.
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> InvalidValue {
    InvalidValue { code, message: message.into() }
}

/// A user name: 3–50 characters after trimming, no control characters, no `:` (HTTP Basic
/// separates name and password with the first colon, RFC 7617 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        let chars = name.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(invalid(
                "invalid_name",
                format!("name must be {}–{} characters", Self::MIN_CHARS, Self::MAX_CHARS),
            ));
        }
        if name.chars().any(|c| c.is_control() || c == ':') {
            return Err(invalid("invalid_name", "name must not contain control characters or ':'"));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key that makes names unique regardless of case ("Alice" and "ALICE" collide).
    pub fn key(&self) -> String {
        name_key(&self.0)
    }
}

/// The case-insensitive lookup key of any name as typed at login.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// A password: 8–72 bytes. bcrypt only reads 72 bytes, so a longer one is refused instead of
/// being silently truncated.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_BYTES: usize = 8;
    /// bcrypt keys on at most 72 bytes: a longer password is refused rather than silently cut.
    pub const MAX_BYTES: usize = 72;

    pub fn parse(raw: String) -> Result<Self, InvalidValue> {
        Self::check_length(&raw)?;
        Ok(Self(SecretString::from(raw)))
    }

    /// The length rule alone, for login: a password over 72 bytes can never match.
    pub fn check_length(raw: &str) -> Result<(), InvalidValue> {
        if (Self::MIN_BYTES..=Self::MAX_BYTES).contains(&raw.len()) {
            Ok(())
        } else {
            Err(invalid("invalid_password", format!("password must be {}–{} bytes", Self::MIN_BYTES, Self::MAX_BYTES)))
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A page of a listing: `limit` 1..=100 (default 50), `offset` at least 0 (default 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 100;

    /// The page asked for, with the defaults for what was not given.
    pub fn parse(limit: Option<i64>, offset: Option<i64>) -> Result<Self, InvalidValue> {
        let page = Self { limit: limit.unwrap_or(Self::DEFAULT_LIMIT), offset: offset.unwrap_or(0) };
        if !(1..=Self::MAX_LIMIT).contains(&page.limit) || page.offset < 0 {
            return Err(invalid(
                "invalid_page",
                format!("limit must be 1..={} and offset at least 0", Self::MAX_LIMIT),
            ));
        }
        Ok(page)
    }
}

/// The writable fields of an author, checked and trimmed ([`parse_author`]); written to the
/// database as they are.
#[derive(Debug, Clone, diesel::AsChangeset, diesel::Insertable)]
#[diesel(table_name = crate::schema::authors)]
pub struct AuthorFields {
    pub name: String,
    pub book: String,
    pub country: String,
    pub booker_prize: bool,
}

/// Checks and trims the fields of an author.
pub fn parse_author(name: &str, book: &str, country: &str, booker_prize: bool) -> Result<AuthorFields, InvalidValue> {
    Ok(AuthorFields {
        name: trimmed_text("name", name, 100)?,
        book: trimmed_text("book", book, 200)?,
        country: trimmed_text("country", country, 60)?,
        booker_prize,
    })
}

fn trimmed_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, InvalidValue> {
    let value = raw.trim();
    let chars = value.chars().count();
    if chars == 0 || chars > max_chars {
        return Err(invalid("invalid_author", format!("{field} must be 1–{max_chars} characters after trimming")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("invalid_author", format!("{field} must not contain control characters")));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_trimmed_checked_and_keyed_case_insensitively() {
        assert_eq!(UserName::parse("  alice ").expect("valid").as_str(), "alice");
        assert_eq!(UserName::parse("Ärger").expect("valid").key(), UserName::parse("äRGER").expect("valid").key());
        for bad in ["", "ab", "  ab  ", &"x".repeat(51), "a:b:c", "tab\there"] {
            assert_eq!(UserName::parse(bad).expect_err(bad).code, "invalid_name", "{bad:?}");
        }
        assert!(UserName::parse(&"é".repeat(50)).is_ok(), "limits count characters, not bytes");
    }

    #[test]
    fn passwords_must_be_8_to_72_bytes() {
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("x".repeat(72)).is_ok());
        for bad in ["1234567".to_string(), "x".repeat(73), "é".repeat(37)] {
            assert_eq!(Password::parse(bad.clone()).expect_err(&bad).code, "invalid_password");
        }
    }

    #[test]
    fn pages_default_to_50_from_0_and_are_bounded() {
        assert_eq!(Page::parse(None, None), Ok(Page { limit: 50, offset: 0 }));
        assert_eq!(Page::parse(Some(100), Some(7)), Ok(Page { limit: 100, offset: 7 }));
        for (limit, offset) in [(Some(0), None), (Some(101), None), (Some(-1), None), (None, Some(-1))] {
            assert_eq!(Page::parse(limit, offset).expect_err("out of range").code, "invalid_page");
        }
    }

    #[test]
    fn author_fields_are_trimmed_and_bounded() {
        let fields = parse_author(" Ishiguro ", " The Remains of the Day", "UK ", true).expect("valid");
        assert_eq!(
            (fields.name.as_str(), fields.book.as_str(), fields.country.as_str()),
            ("Ishiguro", "The Remains of the Day", "UK")
        );
        assert!(parse_author("   ", "b", "c", false).is_err());
        assert!(parse_author("a", &"b".repeat(201), "c", false).is_err());
        assert!(parse_author("a", "b", &"c".repeat(61), false).is_err());
        assert!(parse_author(&"a".repeat(101), "b", "c", false).is_err());
        assert!(parse_author(&"a".repeat(100), &"b".repeat(200), &"c".repeat(60), false).is_ok());
    }
}
