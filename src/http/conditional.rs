//! Conditional GET (RFC 9110 §13.1.2): a rendered view answers 304 Not Modified when the
//! request's `If-None-Match` already names its entity tag.

use crate::service::cache::Rendered;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

/// Whether `If-None-Match` (every field line of it) matches `etag` by the weak comparison:
/// `*`, or a listed tag whose opaque part equals ours, `W/` or not. A malformed field matches
/// nothing, so the full response is sent.
pub fn none_match<'a>(fields: impl IntoIterator<Item = &'a HeaderValue>, etag: &[u8]) -> bool {
    fields.into_iter().any(|field| list_matches(field.as_bytes(), etag))
}

/// One field value: `*` or `#entity-tag` (comma-separated; commas may appear inside a tag).
fn list_matches(mut rest: &[u8], etag: &[u8]) -> bool {
    if rest.trim_ascii() == b"*" {
        return true;
    }
    loop {
        rest = rest.trim_ascii_start();
        while let [b',', tail @ ..] = rest {
            rest = tail.trim_ascii_start();
        }
        if rest.is_empty() {
            return false;
        }
        if let [b'W', b'/', tail @ ..] = rest {
            rest = tail;
        }
        let [b'"', tail @ ..] = rest else { return false };
        let Some(end) = tail.iter().position(|byte| *byte == b'"') else { return false };
        // The tag with its quotes.
        if &rest[..end + 2] == etag {
            return true;
        }
        rest = &tail[end + 1..];
        // Between tags only whitespace and a comma.
        let next = rest.trim_ascii_start();
        if !(next.is_empty() || next.starts_with(b",")) {
            return false;
        }
    }
}

/// `view` as a response made from `response` (status and caching headers already set): its
/// body, `ETag` and `Link`; or 304 with the same headers and no body when the client has it.
pub fn respond(req: &HttpRequest, mut response: HttpResponseBuilder, view: &Rendered) -> HttpResponse {
    if let Ok(etag) = HeaderValue::from_maybe_shared(view.etag.clone()) {
        response.insert_header((header::ETAG, etag));
    }
    if let Some(link) = view.link.as_ref().and_then(|link| HeaderValue::from_maybe_shared(link.clone()).ok()) {
        response.insert_header((header::LINK, link));
    }
    if none_match(req.headers().get_all(header::IF_NONE_MATCH), &view.etag) {
        return response.status(actix_web::http::StatusCode::NOT_MODIFIED).finish();
    }
    response.content_type("application/json").body(view.body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_uses_the_weak_comparison_over_lists_and_star() {
        let etag = br#""abc""#;
        let cases: &[(&[&str], bool, &str)] = &[
            (&[r#""abc""#], true, "the same tag"),
            (&[r#"W/"abc""#], true, "weak comparison ignores W/"),
            (&["*"], true, "any representation"),
            (&[" * "], true, "star with whitespace"),
            (&[r#""x", "abc""#], true, "in a list"),
            (&[r#""x",W/"abc" , "y""#], true, "weak, in a list without spaces"),
            (&[r#""x""#, r#""abc""#], true, "in a second field line"),
            (&[r#",, "abc""#], true, "empty list elements are allowed"),
            (&[r#""a,b", "abc""#], true, "a comma inside another tag"),
            (&[r#""abcd""#], false, "a longer tag"),
            (&[r#""ab""#], false, "a shorter tag"),
            (&["abc"], false, "unquoted"),
            (&[r#""ABC""#], false, "tags are case-sensitive"),
            (&[""], false, "empty"),
            (&[r#""abc"#], false, "unterminated"),
            (&[r#""x" "abc""#], false, "no comma between tags: malformed"),
            (&[r#"w/"abc""#], false, "the weak prefix is case-sensitive"),
            (&["*, \"x\""], false, "star is not a list element"),
        ];
        for (fields, expected, case) in cases {
            let values: Vec<HeaderValue> = fields.iter().map(|f| HeaderValue::from_str(f).expect("header")).collect();
            assert_eq!(none_match(&values, etag), *expected, "{case}: {fields:?}");
        }
    }
}
