//! What an expression evaluates to, and the binding of a call's arguments to a function's
//! declared parameters (positional first, then keywords, a `multiple` parameter taking the rest).

use super::error::QueryError;
use super::functions::{Param, ParamType};
use super::series::Series;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    SeriesList(Vec<Series>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::SeriesList(_) => "seriesList",
            Value::Str(_) => "string",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::None => "None",
        }
    }

    /// The value as Python's `repr` would show it inside a series name.
    pub fn python_repr(&self) -> String {
        match self {
            Value::Str(s) => format!("'{s}'"),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => crate::python::format::float_repr(*f),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::None => "None".into(),
            Value::SeriesList(_) => "<seriesList>".into(),
        }
    }
}

/// A call's evaluated arguments, bound to the function's parameters.
#[derive(Debug)]
pub struct Args {
    function: &'static str,
    /// One slot per declared parameter; a `multiple` parameter's slot holds every value given.
    slots: Vec<(&'static Param, Vec<Value>)>,
}

impl Args {
    /// Binds positional and keyword values to `params`. Errors (400) name the function and the
    /// parameter: too many arguments, an unknown keyword, a required parameter missing.
    pub fn bind(
        function: &'static str,
        params: &'static [Param],
        positional: Vec<Value>,
        keywords: Vec<(String, Value)>,
    ) -> Result<Args, QueryError> {
        let mut slots: Vec<(&'static Param, Vec<Value>)> =
            params.iter().map(|p| (p, Vec::new())).collect();
        let mut i = 0;
        for value in positional {
            if i >= slots.len() {
                return Err(QueryError::bad(format!(
                    "{function}: too many arguments (it takes {})",
                    params.len()
                )));
            }
            slots[i].1.push(value);
            if !slots[i].0.multiple {
                i += 1;
            }
        }
        for (key, value) in keywords {
            // graphite-web's keywords are the Python parameter names, which differ from the
            // `/functions` names only in case (`alignDST` and `alignDst`): accept both.
            let found = match slots.iter().position(|(p, _)| p.name == key) {
                Some(i) => Some(i),
                None => slots
                    .iter()
                    .position(|(p, _)| p.name.eq_ignore_ascii_case(&key)),
            };
            let Some(slot) = found.map(|i| &mut slots[i]) else {
                return Err(QueryError::bad(format!(
                    "{function}: unknown keyword argument {key:?}"
                )));
            };
            if !slot.1.is_empty() && !slot.0.multiple {
                return Err(QueryError::bad(format!(
                    "{function}: argument {key:?} given twice"
                )));
            }
            slot.1.push(value);
        }
        for (p, values) in &slots {
            if p.required && values.is_empty() {
                return Err(QueryError::bad(format!(
                    "{function}: missing required argument {:?}",
                    p.name
                )));
            }
        }
        Ok(Args { function, slots })
    }

    pub fn function(&self) -> &'static str {
        self.function
    }

    fn slot(&self, name: &str) -> &[Value] {
        self.slots
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    fn err(&self, name: &str, want: &str, got: &Value) -> QueryError {
        QueryError::bad(format!(
            "{}: argument {name:?} must be {want}, got {} {}",
            self.function,
            got.type_name(),
            got.python_repr()
        ))
    }

    /// The single value given for `name`, if any (None is given as `Value::None`).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.slot(name).first()
    }

    /// Whether `name` was given and is not None.
    pub fn has(&self, name: &str) -> bool {
        !matches!(self.get(name), None | Some(Value::None))
    }

    /// Every value given for a `multiple` parameter.
    pub fn all(&self, name: &str) -> &[Value] {
        self.slot(name)
    }

    /// A series list argument (required).
    pub fn series(&mut self, name: &str) -> Result<Vec<Series>, QueryError> {
        let function = self.function;
        let slot = self
            .slots
            .iter_mut()
            .find(|(p, _)| p.name == name)
            .ok_or_else(|| QueryError::Internal(format!("{function}: no parameter {name}")))?;
        match slot.1.first_mut() {
            Some(Value::SeriesList(list)) => Ok(std::mem::take(list)),
            Some(other) => {
                let other = other.clone();
                Err(self.err(name, "a series list", &other))
            }
            None => Err(QueryError::bad(format!(
                "{function}: missing required argument {name:?}"
            ))),
        }
    }

    /// Every series list given for a `multiple` series parameter, concatenated in order.
    /// The lists are moved out (as [`Args::series`] moves its list): the fetched data is
    /// never copied.
    pub fn series_all(&mut self, name: &str) -> Result<Vec<Series>, QueryError> {
        if let Some(other) = self
            .slot(name)
            .iter()
            .find(|v| !matches!(v, Value::SeriesList(_)))
        {
            return Err(self.err(name, "a series list", other));
        }
        let mut out = Vec::new();
        if let Some((_, values)) = self.slots.iter_mut().find(|(p, _)| p.name == name) {
            for v in values.iter_mut() {
                if let Value::SeriesList(list) = v {
                    out.append(list);
                }
            }
        }
        Ok(out)
    }

    /// A float (ints accepted); None when absent or None.
    pub fn opt_float(&self, name: &str) -> Result<Option<f64>, QueryError> {
        match self.get(name) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Float(f)) => Ok(Some(*f)),
            Some(Value::Int(i)) => Ok(Some(*i as f64)),
            Some(Value::Bool(b)) => Ok(Some(if *b { 1.0 } else { 0.0 })),
            Some(other) => Err(self.err(name, "a number", other)),
        }
    }

    pub fn float(&self, name: &str, default: f64) -> Result<f64, QueryError> {
        Ok(self.opt_float(name)?.unwrap_or(default))
    }

    /// An integer (floats refused, as graphite-web's validation does); None when absent.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, QueryError> {
        match self.get(name) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(Value::Bool(b)) => Ok(Some(*b as i64)),
            Some(other) => Err(self.err(name, "an integer", other)),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, QueryError> {
        Ok(self.opt_int(name)?.unwrap_or(default))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, QueryError> {
        match self.get(name) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(self.err(name, "a string", other)),
        }
    }

    pub fn str(&self, name: &str, default: &'static str) -> Result<String, QueryError> {
        Ok(self.opt_str(name)?.unwrap_or(default).to_string())
    }

    /// A boolean; graphite-web functions test truthiness, so numbers and strings are accepted
    /// as Python would judge them.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, QueryError> {
        Ok(match self.get(name) {
            None => default,
            Some(Value::None) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Int(i)) => *i != 0,
            Some(Value::Float(f)) => *f != 0.0,
            // graphite-web's parameter validation turns "true"/"false" into booleans.
            Some(Value::Str(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(Value::Str(s)) => !s.is_empty(),
            Some(Value::SeriesList(l)) => !l.is_empty(),
        })
    }

    /// The declared type of a parameter, for functions that accept several shapes.
    pub fn param_type(&self, name: &str) -> Option<ParamType> {
        self.slots
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(p, _)| p.ty)
    }
}
