//! Checked request values ("parse, don't validate"): once a [`UserName`], [`Password`] or
//! [`AuthorFields`] exists, it is valid, and nothing downstream checks again.

use precis_profiles::precis_core::profile::PrecisFastInvocation as _;
use precis_profiles::precis_core::{DerivedPropertyValue, Error as PrecisError};
use precis_profiles::{UsernameCaseMapped, UsernameCasePreserved};
use secrecy::{ExposeSecret, SecretString};
use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization as _;

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

/// A user name, checked against the PRECIS `UsernameCaseMapped` profile (RFC 8265 §3.3) part by
/// part (parts are separated by single spaces, §3.5), 3–50 characters after trimming and NFC,
/// without `:` (HTTP Basic separates name and password with the first colon, RFC 7617 §2).
///
/// It carries what makes it unique: its [key](Self::key) (the case-mapped form, by which login
/// finds the user) and two confusable [skeletons](Self::skeleton) (Unicode TS #39 §4), so a
/// look-alike of a taken name is taken too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName {
    /// As typed, trimmed and in NFC: what is stored and shown.
    shown: String,
    key: String,
    skeleton: String,
    shown_skeleton: String,
}

impl UserName {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        if name.chars().any(|c| c.is_control() || c == ':') {
            return Err(invalid("invalid_name", "name must not contain control characters or ':'"));
        }
        let shown: String = name.nfc().collect();
        let chars = shown.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(invalid(
                "invalid_name",
                format!("name must be {}–{} characters", Self::MIN_CHARS, Self::MAX_CHARS),
            ));
        }
        let key = fold_final_sigma(each_part(&shown, UsernameCaseMapped::enforce)?);
        let preserved = each_part(&shown, UsernameCasePreserved::enforce)?;
        Ok(Self { skeleton: skeleton(&key), shown_skeleton: shown_skeleton(&preserved), key, shown })
    }

    pub fn as_str(&self) -> &str {
        &self.shown
    }

    /// The case-mapped form (RFC 8265 §3.3): "Alice", "ALICE" and "ａｌｉｃｅ" share the key "alice".
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The TS #39 skeleton of the [key](Self::key): "kаra" (Cyrillic а) and "kara" share one.
    pub fn skeleton(&self) -> &str {
        &self.skeleton
    }

    /// The look-alike form of the name as shown, case kept (its skeleton, lowercased and
    /// skeletonized again): "ΤΟΜ" (Greek), "TOM" and "tom" share one, and so do "Ivan" and "lvan".
    pub fn shown_skeleton(&self) -> &str {
        &self.shown_skeleton
    }
}

/// Applies a PRECIS profile to each space-separated part (RFC 8265 §3.5) and joins the results
/// with single spaces. An empty part (two spaces in a row) is refused: "a  b" would look like
/// "a b".
fn each_part<'a>(
    name: &'a str,
    enforce: fn(&'a str) -> Result<Cow<'a, str>, PrecisError>,
) -> Result<String, InvalidValue> {
    let mut parts = Vec::new();
    for part in name.split(' ') {
        if part.is_empty() {
            return Err(invalid("invalid_name", "parts of a name must be separated by single spaces"));
        }
        parts.push(enforce(part).map_err(refused_name)?);
    }
    Ok(parts.join(" "))
}

fn refused_name(error: PrecisError) -> InvalidValue {
    let message = match error {
        // The PRECIS tables stop at Unicode 6.3 (the IANA registry's version): later letters
        // are unassigned to them.
        PrecisError::BadCodepoint(info) if info.property == DerivedPropertyValue::Unassigned => {
            format!("name must not contain U+{:04X}: names use characters of Unicode 6.3 (RFC 8264)", info.cp)
        }
        PrecisError::BadCodepoint(info) => format!(
            "name must not contain U+{:04X}: names are letters, digits and visible ASCII, without \
             invisible, formatting, compatibility or symbol characters (RFC 8265)",
            info.cp
        ),
        // The only other refusal of a non-empty part: the Bidi Rule (RFC 5893).
        _ => "name mixes right-to-left and left-to-right text in a way that can display ambiguously".to_string(),
    };
    invalid("invalid_name", message)
}

fn skeleton(s: &str) -> String {
    unicode_security::skeleton(s).collect()
}

/// Greek has two small sigmas: "ς" at the end of a word, "σ" elsewhere. Lowercasing a word picks
/// one by position, character-wise mapping always gives "σ", and the confusable tables treat
/// them differently; one sigma keeps "ΟΔΟΣ" and "οδος" one name.
fn fold_final_sigma(s: String) -> String {
    if s.contains('ς') { s.replace('ς', "σ") } else { s }
}

/// The skeleton of a name as shown, lowercased and skeletonized again. The skeleton of the
/// case-mapped form misses look-alikes that only capitals make: "ΤΟΜ" (Greek) renders like
/// "TOM", yet "τομ" does not look like "tom". The skeleton of the name as shown catches those
/// ("TOM" and "Ivan"/"lvan" too); lowercasing it and taking the skeleton again lets any case of
/// one name meet any case of its look-alike ("ΚΑRΑ" and "kara").
fn shown_skeleton(shown: &str) -> String {
    skeleton(&fold_final_sigma(skeleton(shown).to_lowercase()))
}

/// The lookup key of any name as typed at login: its case-mapped form (the [`UserName::key`] of
/// a valid name). For a name the profile refuses, the Unicode lowercase of the trimmed name,
/// which is how names were keyed before these rules: a user registered earlier under such a
/// name still logs in with it.
pub fn name_key(name: &str) -> String {
    let name = name.trim();
    let nfc: String = name.nfc().collect();
    each_part(&nfc, UsernameCaseMapped::enforce).map(fold_final_sigma).unwrap_or_else(|_| name.to_lowercase())
}

/// The key a name as typed was stored under before these rules: its trimmed Unicode lowercase,
/// byte for byte (an NFD "josé" stays NFD). Login tries it first, so a user whose name became
/// the same key as an older user's under the rules still finds their own account.
pub fn legacy_name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The two skeletons ([`UserName::skeleton`], [`UserName::shown_skeleton`]) of a name stored
/// before these rules. For a name the profile refuses, the skeletons of its lowercase and of
/// itself (TS #39 skeletons drop invisible characters and map compatibility look-alikes such as
/// "ﬁ" or "𝐤"), so no new name may look like it either.
pub fn stored_name_skeletons(stored: &str) -> (String, String) {
    match UserName::parse(stored) {
        Ok(name) => (name.skeleton, name.shown_skeleton),
        Err(_) => (skeleton(&stored.to_lowercase()), shown_skeleton(stored)),
    }
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

/// The `User-Agent` a login was made with, as shown in the user's list of sessions: at most
/// [`UserAgent::MAX_CHARS`] characters (cut at a character boundary), bytes that are not UTF-8
/// replaced, control characters dropped. An empty header is no user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent(String);

impl UserAgent {
    pub const MAX_CHARS: usize = 256;

    pub fn from_header(raw: &[u8]) -> Option<Self> {
        let text: String =
            String::from_utf8_lossy(raw).chars().filter(|c| !c.is_control()).take(Self::MAX_CHARS).collect();
        let text = text.trim();
        (!text.is_empty()).then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A page of a listing ordered by id: `limit` 1..=100 (default 50), starting after an id
/// (keyset: an index range scan however deep) or at an offset (default 0: the first page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    pub limit: i64,
    pub start: PageStart,
}

/// Where a [`Page`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageStart {
    /// Skip this many rows (at least 0). Kept for old clients: the database still reads every
    /// skipped row.
    Offset(i64),
    /// The rows whose id is greater than this (at least 0).
    After(i64),
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 100;

    /// The page asked for, with the defaults for what was not given. `after` and `offset`
    /// together are the caller's to refuse (a malformed request rather than a bad value).
    pub fn parse(limit: Option<i64>, offset: Option<i64>, after: Option<i64>) -> Result<Self, InvalidValue> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        let start = match after {
            Some(after) => PageStart::After(after),
            None => PageStart::Offset(offset.unwrap_or(0)),
        };
        let (PageStart::Offset(from) | PageStart::After(from)) = start;
        if !(1..=Self::MAX_LIMIT).contains(&limit) || from < 0 || offset.is_some_and(|offset| offset < 0) {
            return Err(invalid(
                "invalid_page",
                format!("limit must be 1..={} and offset and after at least 0", Self::MAX_LIMIT),
            ));
        }
        Ok(Self { limit, start })
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
    fn user_agents_are_cut_at_a_character_boundary_and_cleaned() {
        let long = "é".repeat(300);
        let cut = UserAgent::from_header(long.as_bytes()).expect("kept");
        assert_eq!(cut.as_str().chars().count(), UserAgent::MAX_CHARS);
        assert_eq!(UserAgent::from_header(b"curl/8.5\tx\x7f").expect("kept").as_str(), "curl/8.5x");
        assert_eq!(UserAgent::from_header(b"caf\xe9").expect("kept").as_str(), "caf\u{fffd}");
        assert_eq!(UserAgent::from_header(b"  "), None);
    }

    #[test]
    fn user_names_are_trimmed_checked_and_keyed_case_insensitively() {
        assert_eq!(UserName::parse("  alice ").expect("valid").as_str(), "alice");
        assert_eq!(UserName::parse("Ärger").expect("valid").key(), UserName::parse("äRGER").expect("valid").key());
        for bad in ["", "ab", "  ab  ", &"x".repeat(51), "a:b:c", "tab\there"] {
            assert_eq!(UserName::parse(bad).expect_err(bad).code, "invalid_name", "{bad:?}");
        }
        assert!(UserName::parse(&"é".repeat(50)).is_ok(), "limits count characters, not bytes");
        assert!(UserName::parse(&"e\u{301}".repeat(50)).is_ok(), "limits count the NFC form");
        assert!(UserName::parse(&"e\u{301}".repeat(51)).is_err());
    }

    #[test]
    fn names_are_stored_in_nfc_and_keyed_by_their_case_mapped_form() {
        let cases = [
            // (typed, stored, key)
            ("Jose\u{301}", "José", "josé"),
            ("ＡＬＩＣＥ", "ＡＬＩＣＥ", "alice"),
            ("Mary Ann", "Mary Ann", "mary ann"),
            ("STRAẞE", "STRAẞE", "straße"),
            ("İlker", "İlker", "i\u{307}lker"),
            ("a.b-c_d@e", "a.b-c_d@e", "a.b-c_d@e"),
            // NFC maps the Kelvin sign to K: stored as K, like any canonical equivalent.
            ("\u{212a}elvin", "Kelvin", "kelvin"),
            ("דוד", "דוד", "דוד"),
        ];
        for (typed, stored, key) in cases {
            let name = UserName::parse(typed).expect(typed);
            assert_eq!((name.as_str(), name.key()), (stored, key), "{typed:?}");
            assert_eq!(name_key(typed), key, "login finds {typed:?} by its key");
        }
    }

    #[test]
    fn invisible_formatting_and_compatibility_characters_are_refused_with_their_code_point() {
        let cases = [
            ("ka\u{200b}ra", "U+200B"),
            ("ka\u{200d}ra", "U+200D"),
            ("\u{feff}kara", "U+FEFF"),
            ("ka\u{ad}ra", "U+00AD"),
            ("kara\u{fe0f}", "U+FE0F"),
            ("kara\u{e0061}", "U+E0061"),
            ("kara\u{3164}", "U+3164"),
            ("\u{202e}arak", "U+202E"),
            ("𝐤ara", "U+1D424"),
            ("ﬁne", "U+FB01"),
            ("a\u{a0}bc", "U+00A0"),
            ("smile😀", "U+1F600"),
            ("\u{ab70}bc", "Unicode 6.3"),
        ];
        for (typed, code_point) in cases {
            let error = UserName::parse(typed).expect_err(typed);
            assert_eq!(error.code, "invalid_name", "{typed:?}");
            assert!(error.message.contains(code_point), "{typed:?}: {}", error.message);
        }
        for (typed, why) in [("Mary  Ann", "single spaces"), ("abc\u{5d0}", "right-to-left")] {
            let error = UserName::parse(typed).expect_err(typed);
            assert!(error.message.contains(why), "{typed:?}: {}", error.message);
        }
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let same = |a: &str, b: &str| {
            let (a, b) = (UserName::parse(a).expect(a), UserName::parse(b).expect(b));
            a.key() == b.key() || a.skeleton() == b.skeleton() || a.shown_skeleton() == b.shown_skeleton()
        };
        for (a, b) in [
            ("kara", "k\u{430}ra"),
            ("bob", "b\u{3bf}b"),
            ("TOM", "\u{3a4}\u{39f}\u{39c}"),
            ("kara", "\u{39a}\u{391}R\u{391}"),
            ("Ivan", "lvan"),
            ("ivan", "\u{131}van"),
            ("bob", "B0B"),
            ("ramon", "rarnon"),
            ("jose", "JOSE"),
        ] {
            assert!(same(a, b), "{a:?} and {b:?} look alike");
        }
        for (a, b) in
            [("straße", "strasse"), ("İlker", "ilker"), ("İlker", "Ilker"), ("josé", "jose"), ("ivan", "lvan")]
        {
            assert!(!same(a, b), "{a:?} and {b:?} are different names");
        }
    }

    #[test]
    fn login_falls_back_to_the_old_lowercase_key_for_names_the_profile_refuses() {
        assert_eq!(name_key(" Kara\u{200b} "), "kara\u{200b}");
        assert_eq!(name_key("𝐊ara"), "𝐊ara", "mathematical capitals have no lowercase");
        assert_eq!(name_key("Mary  Ann"), "mary  ann");
        assert_eq!(name_key(""), "");
    }

    #[test]
    fn names_stored_before_the_rules_have_skeletons_even_when_the_profile_refuses_them() {
        let kara = UserName::parse("kara").expect("valid");
        for stored in ["kara\u{200b}", "𝐤𝐚𝐫𝐚", "KA\u{ad}RA", "\u{feff}kara"] {
            let (skeleton, shown_skeleton) = stored_name_skeletons(stored);
            assert!(
                skeleton == kara.skeleton() || shown_skeleton == kara.shown_skeleton(),
                "{stored:?} looks like kara"
            );
        }
        assert_eq!(stored_name_skeletons("kara"), (kara.skeleton().to_string(), kara.shown_skeleton().to_string()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Whatever is typed: no panic, and a name that registers is found by login, typed as
        /// it was or as it is shown, and looks like itself.
        #[test]
        fn any_name_is_refused_or_found_by_login_as_typed_and_as_shown(
            typed in "([a-zA-Z0-9 ._-]|[éÉßẞİıΣσςΟοАаКк]|\u{301}|[Ａ-Ｚａ-ｚ]|\\PC){0,16}"
        ) {
            let key = name_key(&typed);
            if let Ok(name) = UserName::parse(&typed) {
                proptest::prop_assert_eq!(name.key(), key.as_str());
                proptest::prop_assert_eq!(name_key(name.as_str()), key);
                proptest::prop_assert_eq!(
                    stored_name_skeletons(name.as_str()),
                    (name.skeleton().to_string(), name.shown_skeleton().to_string())
                );
            }
        }
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
    fn both_greek_small_sigmas_make_one_name() {
        let (capitals, small) = (UserName::parse("ΟΔΟΣ").expect("valid"), UserName::parse("οδος").expect("valid"));
        assert_eq!(capitals.key(), small.key());
        assert_eq!(capitals.skeleton(), small.skeleton());
        assert_eq!(name_key("ΝΊΚΟΣ"), name_key("Νίκος"));
    }

    #[test]
    fn pages_default_to_50_from_0_and_are_bounded() {
        let page = |limit, start| Page { limit, start };
        assert_eq!(Page::parse(None, None, None), Ok(page(50, PageStart::Offset(0))));
        assert_eq!(Page::parse(Some(100), Some(7), None), Ok(page(100, PageStart::Offset(7))));
        assert_eq!(Page::parse(Some(1), None, Some(0)), Ok(page(1, PageStart::After(0))));
        assert_eq!(Page::parse(None, None, Some(i64::MAX)), Ok(page(50, PageStart::After(i64::MAX))));
        for (limit, offset, after) in [
            (Some(0), None, None),
            (Some(101), None, None),
            (Some(-1), None, None),
            (None, Some(-1), None),
            (None, None, Some(-1)),
            (Some(0), None, Some(3)),
        ] {
            let refused = Page::parse(limit, offset, after).expect_err("out of range");
            assert_eq!(refused.code, "invalid_page", "{limit:?} {offset:?} {after:?}");
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
