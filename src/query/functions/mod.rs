//! The render functions, one file per graphite-web group, and the registry `/functions` and the
//! evaluator read. Each function declares its parameters the way graphite-web's `/functions`
//! describes them (so Grafana's editor offers exactly what is implemented), and its
//! implementation receives the bound arguments.

use super::error::QueryError;
use super::eval::Context;
use super::value::{Args, Value};

pub mod aggfuncs;
pub mod alias;
pub mod calculate;
pub mod combine;
pub mod filter;
pub mod more_calculate;
pub mod more_combine;
pub mod special;
pub mod tags;
pub mod transform;

/// The implementation of one function.
pub type FunctionImpl = fn(&mut Context<'_>, Args) -> Result<Value, QueryError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    SeriesList,
    SeriesLists,
    Float,
    Integer,
    String,
    Boolean,
    Interval,
    IntOrInterval,
    IntOrInf,
    Node,
    NodeOrTag,
    Tag,
    AggFunc,
    AggOrSeriesFunc,
    Any,
    Date,
}

impl ParamType {
    /// The type's name in `/functions`.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::SeriesList => "seriesList",
            ParamType::SeriesLists => "seriesLists",
            ParamType::Float => "float",
            ParamType::Integer => "integer",
            ParamType::String => "string",
            ParamType::Boolean => "boolean",
            ParamType::Interval => "interval",
            ParamType::IntOrInterval => "intOrInterval",
            ParamType::IntOrInf => "intOrInf",
            ParamType::Node => "node",
            ParamType::NodeOrTag => "nodeOrTag",
            ParamType::Tag => "tag",
            ParamType::AggFunc => "aggFunc",
            ParamType::AggOrSeriesFunc => "aggOrSeriesFunc",
            ParamType::Any => "any",
            ParamType::Date => "date",
        }
    }
}

/// A parameter default or suggestion as `/functions` shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Literal {
    Str(&'static str),
    Int(i64),
    /// Infinite floats are written `1e9999`, as graphite-web's JSON does.
    Float(f64),
    Bool(bool),
    /// Python's None, as listed among some options.
    None,
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub multiple: bool,
    pub default: Option<Literal>,
    pub options: &'static [&'static str],
    /// Options that are not strings (smartSummarize's `alignTo` offers False, None and True),
    /// listed before the string ones as graphite-web lists them.
    pub literal_options: &'static [Literal],
    pub suggestions: &'static [Literal],
}

impl Param {
    /// A required parameter.
    pub const fn required(name: &'static str, ty: ParamType) -> Param {
        Param {
            name,
            ty,
            required: true,
            multiple: false,
            default: None,
            options: &[],
            literal_options: &[],
            suggestions: &[],
        }
    }

    /// An optional parameter without a default shown.
    pub const fn optional(name: &'static str, ty: ParamType) -> Param {
        Param {
            name,
            ty,
            required: false,
            multiple: false,
            default: None,
            options: &[],
            literal_options: &[],
            suggestions: &[],
        }
    }

    pub const fn with_default(self, default: Literal) -> Param {
        Param {
            default: Some(default),
            ..self
        }
    }

    pub const fn multiple(self) -> Param {
        Param {
            multiple: true,
            ..self
        }
    }

    pub const fn options(self, options: &'static [&'static str]) -> Param {
        Param { options, ..self }
    }

    pub const fn literal_options(self, literal_options: &'static [Literal]) -> Param {
        Param {
            literal_options,
            ..self
        }
    }

    pub const fn suggestions(self, suggestions: &'static [Literal]) -> Param {
        Param {
            suggestions,
            ..self
        }
    }
}

#[derive(Debug)]
pub struct FunctionDef {
    pub name: &'static str,
    /// graphite-web's group (Combine, Transform, Calculate, Filter Series, Sorting, Alias,
    /// Special, Graph).
    pub group: &'static str,
    /// The Python signature line `/functions` shows as `function`.
    pub signature: &'static str,
    /// Our own description of what the function does.
    pub description: &'static str,
    pub params: &'static [Param],
    pub run: FunctionImpl,
}

/// Every function group's table. A group file adds its `FUNCTIONS` here.
fn tables() -> [&'static [FunctionDef]; 9] {
    [
        combine::FUNCTIONS,
        transform::FUNCTIONS,
        calculate::FUNCTIONS,
        alias::FUNCTIONS,
        filter::FUNCTIONS,
        special::FUNCTIONS,
        more_combine::FUNCTIONS,
        more_calculate::FUNCTIONS,
        tags::FUNCTIONS,
    ]
}

/// The function called `name`, if Carbide implements it.
pub fn lookup(name: &str) -> Option<&'static FunctionDef> {
    tables()
        .into_iter()
        .flat_map(|t| t.iter())
        .find(|f| f.name == name)
}

/// Every implemented function, in table order.
pub fn all() -> impl Iterator<Item = &'static FunctionDef> {
    tables().into_iter().flat_map(|t| t.iter())
}
