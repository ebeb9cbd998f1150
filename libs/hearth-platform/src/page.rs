//! Paging for list calls (AIP-158): page sizes with a default and a cap, and page
//! tokens that are opaque to callers, signed, and bound to the query they came from.
//!
//! A token is `payload.mac`, both base64url: the payload is the position after the
//! last row returned (whatever the list orders by) plus a digest of the method, filter
//! and order; the mac is an HMAC-SHA256 of the payload under the service's
//! `HEARTH_PAGE_TOKEN_SECRET`. A token changed in any byte, made up, or sent with a
//! different filter or order is refused as `INVALID_ARGUMENT` on `page_token`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest as _, Sha256};

use crate::config::Secret;
use crate::error::Violations;

/// Page size when the caller gives none (our default).
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// The largest page (our default); larger requests get this many.
pub const MAX_PAGE_SIZE: i64 = 500;

/// Signs and checks a service's page tokens.
#[derive(Clone)]
pub struct Pager {
    key: hmac::Key,
    default_size: i64,
    max_size: i64,
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("default_size", &self.default_size)
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}

/// What a list call asked for.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery<'a> {
    /// The RPC, e.g. `ListReferrals`: a token from one list is no good for another.
    pub method: &'a str,
    pub page_size: i32,
    pub page_token: &'a str,
    /// The filter exactly as sent (`""` for none).
    pub filter: &'a str,
    /// The order exactly as sent (`""` for the list's default).
    pub order_by: &'a str,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<P> {
    /// Rows to return (fetch one more to learn whether another page follows).
    pub size: i64,
    /// The position after which this page starts; `None` for the first page.
    pub after: Option<P>,
}

#[derive(Serialize, serde::Deserialize)]
struct Payload<P> {
    /// The position after the last row returned.
    p: P,
    /// Digest of the query the token belongs to.
    q: String,
}

impl Pager {
    pub fn new(secret: &Secret<Vec<u8>>) -> Pager {
        Pager {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose()),
            default_size: DEFAULT_PAGE_SIZE,
            max_size: MAX_PAGE_SIZE,
        }
    }

    /// Another default and cap, for a list whose rows are unusually large or small.
    pub fn with_sizes(mut self, default_size: i64, max_size: i64) -> Pager {
        self.default_size = default_size.max(1);
        self.max_size = max_size.max(self.default_size);
        self
    }

    /// The page a call asked for. Bad sizes and tokens become violations on
    /// `page_size` and `page_token`.
    pub fn page<P: DeserializeOwned>(&self, v: &mut Violations, q: &PageQuery<'_>) -> Page<P> {
        let size = match i64::from(q.page_size) {
            0 => self.default_size,
            n if n < 0 => {
                v.add("page_size", "must not be negative");
                self.default_size
            }
            n => n.min(self.max_size),
        };
        let after = if q.page_token.is_empty() {
            None
        } else {
            match self.open(q) {
                Ok(p) => Some(p),
                Err(why) => {
                    v.add("page_token", why);
                    None
                }
            }
        };
        Page { size, after }
    }

    /// The token for the page after `last`, the position of the last row returned.
    pub fn next_token<P: Serialize>(&self, q: &PageQuery<'_>, last: &P) -> String {
        let payload = Payload {
            p: last,
            q: query_digest(q),
        };
        // A position is plain data (times, ids, numbers): it always serialises.
        let body = B64.encode(serde_json::to_vec(&payload).unwrap_or_default());
        let mac = hmac::sign(&self.key, body.as_bytes());
        format!("{body}.{}", B64.encode(mac.as_ref()))
    }

    fn open<P: DeserializeOwned>(&self, q: &PageQuery<'_>) -> Result<P, &'static str> {
        const FORGED: &str = "is not a page token this service issued; start again without one";
        let (body, mac) = q.page_token.split_once('.').ok_or(FORGED)?;
        let mac = B64.decode(mac).map_err(|_| FORGED)?;
        hmac::verify(&self.key, body.as_bytes(), &mac).map_err(|_| FORGED)?;
        let bytes = B64.decode(body).map_err(|_| FORGED)?;
        let payload: Payload<P> = serde_json::from_slice(&bytes).map_err(|_| FORGED)?;
        if payload.q != query_digest(q) {
            return Err(
                "was issued for a different filter or order; send the same filter and order, or start again without a token",
            );
        }
        Ok(payload.p)
    }
}

fn query_digest(q: &PageQuery<'_>) -> String {
    let mut h = Sha256::new();
    for part in [q.method, q.filter, q.order_by] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    B64.encode(&h.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pager() -> Pager {
        Pager::new(&Secret::new(
            b"a secret of at least thirty-two bytes".to_vec(),
        ))
    }

    fn query<'a>(token: &'a str, filter: &'a str) -> PageQuery<'a> {
        PageQuery {
            method: "ListThings",
            page_size: 0,
            page_token: token,
            filter,
            order_by: "",
        }
    }

    fn open(p: &Pager, q: &PageQuery<'_>) -> (Page<(i64, String)>, Vec<String>) {
        let mut v = Violations::new();
        let page = p.page(&mut v, q);
        (page, v.iter().map(|(f, _)| f.to_owned()).collect())
    }

    #[test]
    fn a_token_leads_back_to_its_position() {
        let p = pager();
        let token = p.next_token(&query("", "state = RECEIVED"), &(42i64, "x".to_owned()));
        let (page, bad) = open(&p, &query(&token, "state = RECEIVED"));
        assert!(bad.is_empty());
        assert_eq!(page.after, Some((42, "x".to_owned())));
        assert_eq!(page.size, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn a_changed_byte_a_made_up_token_or_another_filter_is_refused() {
        let p = pager();
        let token = p.next_token(&query("", "a"), &(1i64, "x".to_owned()));
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed == token {
                continue;
            }
            assert_eq!(
                open(&p, &query(&changed, "a")).1,
                ["page_token"],
                "byte {i}"
            );
        }
        assert_eq!(open(&p, &query(&token, "b")).1, ["page_token"]);
        assert_eq!(open(&p, &query("bm90IGEgdG9rZW4", "a")).1, ["page_token"]);
        // Another key (another deployment, or a rotated secret) did not sign it.
        let other = Pager::new(&Secret::new(
            b"another secret, also thirty-two bytes".to_vec(),
        ));
        assert_eq!(open(&other, &query(&token, "a")).1, ["page_token"]);
        // Another list's token does not fit this one.
        let mut q = query(&token, "a");
        q.method = "ListOthers";
        assert_eq!(open(&p, &q).1, ["page_token"]);
    }

    #[test]
    fn sizes_have_a_default_and_a_cap() {
        let p = pager().with_sizes(10, 20);
        let mut q = query("", "");
        q.page_size = 5;
        assert_eq!(open(&p, &q).0.size, 5);
        q.page_size = 0;
        assert_eq!(open(&p, &q).0.size, 10);
        q.page_size = 1000;
        assert_eq!(open(&p, &q).0.size, 20);
        q.page_size = -1;
        assert_eq!(open(&p, &q).1, ["page_size"]);
    }
}
