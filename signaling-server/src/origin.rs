//! Which web pages may open signaling sockets: a browser sends the page's origin in the
//! WebSocket handshake's `Origin` header (scripts cannot forge it), so checking it stops any
//! other web site from using its visitors' browsers against this server.
//!
//! Allowed: no `Origin` header at all (native nodes, scripts: not a browser page), the
//! server's own origin (the `Origin`'s host and port are the request's `Host`, as for the page
//! this server serves), and the configured origins ([`crate::Config::allowed_origins`]; `*`
//! allows any).

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// The configured origins, normalized.
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowedOrigins {
    any: bool,
    listed: Vec<String>,
}

impl AllowedOrigins {
    pub(crate) fn new(configured: &[String]) -> Self {
        let any = configured.iter().any(|o| o.trim() == "*");
        let listed = configured.iter().filter(|o| o.trim() != "*").filter_map(|o| normalize(o)).collect();
        Self { any, listed }
    }

    /// `Ok` when a request with these headers may open a socket, else why not (for the
    /// 403's body).
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(origin) = headers.get(ORIGIN) else { return Ok(()) };
        if self.any {
            return Ok(());
        }
        let Ok(origin) = origin.to_str() else {
            return Err("the Origin header is not readable".to_string());
        };
        if let Some(own) = normalize(origin)
            && (self.listed.contains(&own) || is_own(&own, headers))
        {
            return Ok(());
        }
        Err(format!(
            "pages of {origin} may not use this signaling server (allowed: this server's own pages{}; \
             the operator adds others with --allowed-origin)",
            if self.listed.is_empty() { String::new() } else { format!(", {}", self.listed.join(", ")) }
        ))
    }
}

/// `scheme://host[:port]` in lower case, without a default port or a trailing slash;
/// `None` for anything else (`null`, paths, other schemes).
fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    let authority = strip_default_port(scheme, authority);
    Some(format!("{scheme}://{authority}"))
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// Whether the normalized `origin` is this server's own: its host and port are the `Host`
/// the browser sent (the page was loaded from the same host and port).
fn is_own(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else { return false };
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let host = host.trim().to_ascii_lowercase();
    strip_default_port(scheme, &host) == authority
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(host).expect("header"));
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(o).expect("header"));
        }
        h
    }

    #[test]
    fn own_origin_and_no_origin_pass_others_do_not() {
        let allowed = AllowedOrigins::new(&[]);
        assert!(allowed.check(&headers(None, "127.0.0.1:8080")).is_ok());
        assert!(allowed.check(&headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080")).is_ok());
        assert!(allowed.check(&headers(Some("http://Example.org"), "example.org:80")).is_ok());
        assert!(allowed.check(&headers(Some("https://example.org"), "example.org")).is_ok());
        assert!(allowed.check(&headers(Some("http://evil.example"), "127.0.0.1:8080")).is_err());
        assert!(allowed.check(&headers(Some("http://127.0.0.1:9999"), "127.0.0.1:8080")).is_err());
        assert!(allowed.check(&headers(Some("null"), "127.0.0.1:8080")).is_err());
    }

    #[test]
    fn listed_origins_and_the_wildcard() {
        let allowed = AllowedOrigins::new(&["https://past.example/".into()]);
        assert!(allowed.check(&headers(Some("https://past.example"), "10.0.0.1:8080")).is_ok());
        assert!(allowed.check(&headers(Some("https://past.example:443"), "10.0.0.1:8080")).is_ok());
        assert!(allowed.check(&headers(Some("http://past.example"), "10.0.0.1:8080")).is_err());
        let any = AllowedOrigins::new(&["*".into()]);
        assert!(any.check(&headers(Some("http://evil.example"), "127.0.0.1:8080")).is_ok());
        assert!(any.check(&headers(Some("null"), "127.0.0.1:8080")).is_ok());
    }
}
