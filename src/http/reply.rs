//! What an endpoint answers, independent of hyper, so the endpoints can be called and tested
//! in process.

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type: content_type.to_string(),
            body: body.into(),
        }
    }

    pub fn json(body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(200, "application/json", body)
    }

    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Reply::new(status, "text/plain; charset=utf-8", body)
    }

    /// `callback(body)` as graphite-web answers when `jsonp` is given.
    pub fn json_or_jsonp(body: String, jsonp: Option<&str>) -> Reply {
        match jsonp {
            Some(cb) => Reply::new(200, "text/javascript", format!("{cb}({body})")),
            None => Reply::json(body),
        }
    }
}

/// Request parameters in order, the query string's first and the form body's after it. A
/// lookup of one value takes the last (Django's QueryDict after `GET.copy().update(POST)`).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>, form: Option<&[u8]>) -> Params {
        let mut out = Vec::new();
        if let Some(q) = query {
            out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        if let Some(body) = form {
            out.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(out)
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Every value given for `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
