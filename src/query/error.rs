//! Errors of the read side, each with the HTTP status it is answered with.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// The request is wrong (bad expression, unknown function, bad argument, bad time): 400.
    BadRequest(String),
    /// A configured limit was exceeded: 422 naming the limit.
    Limit(String),
    /// Anything else: 500.
    Internal(String),
}

impl QueryError {
    pub fn bad(msg: impl Into<String>) -> QueryError {
        QueryError::BadRequest(msg.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            QueryError::BadRequest(_) => 400,
            QueryError::Limit(_) => 422,
            QueryError::Internal(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            QueryError::BadRequest(m) | QueryError::Limit(m) | QueryError::Internal(m) => m,
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for QueryError {}
