//! The parsed form of a render target. Pipes (`a.b | scale(2)`) are desugared by the parser into
//! nested calls, exactly as graphite-web's evaluator inserts the piped value as the first argument.

/// One expression of graphite-web's target grammar.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A path expression as written (globs and all), fetched from the store.
    Path(String),
    Call(Call),
    /// A quoted string with its quotes removed; backslash escapes are kept as written, because
    /// graphite-web does not unescape (`"\1"` reaches aliasSub as backslash-one).
    Str(String),
    Int(i64),
    /// Floats, scientific numbers and the `inf` keyword.
    Float(f64),
    Bool(bool),
    None,
    /// `template(expr, k=v, ...)`: `$name` and `$1` in the inner paths are replaced.
    Template(Template),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Expr>,
    pub kwargs: Vec<(String, Expr)>,
    /// The call's text as written, from the name to the closing parenthesis (graphite-web hands
    /// `seriesByTag(...)` to the tag database as this text).
    pub raw: String,
    /// Byte offset of the call's name in the target, for error messages.
    pub position: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub inner: Box<Expr>,
    pub args: Vec<Expr>,
    pub kwargs: Vec<(String, Expr)>,
}
