use std::fmt;
use std::str::FromStr;

use super::WhisperError;

/// How a lower-precision archive summarises the points of a higher one. The discriminants are
/// the codes stored in the file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregationMethod {
    Average = 1,
    Sum = 2,
    Last = 3,
    Max = 4,
    Min = 5,
    AvgZero = 6,
    AbsMax = 7,
    AbsMin = 8,
}

impl AggregationMethod {
    /// All methods in code order, as whisper.py lists them.
    pub const ALL: [AggregationMethod; 8] = [
        AggregationMethod::Average,
        AggregationMethod::Sum,
        AggregationMethod::Last,
        AggregationMethod::Max,
        AggregationMethod::Min,
        AggregationMethod::AvgZero,
        AggregationMethod::AbsMax,
        AggregationMethod::AbsMin,
    ];

    /// The name whisper.py uses (`avg_zero`, `absmax`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AggregationMethod::Average => "average",
            AggregationMethod::Sum => "sum",
            AggregationMethod::Last => "last",
            AggregationMethod::Max => "max",
            AggregationMethod::Min => "min",
            AggregationMethod::AvgZero => "avg_zero",
            AggregationMethod::AbsMax => "absmax",
            AggregationMethod::AbsMin => "absmin",
        }
    }

    /// The header code (1..=8).
    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get((code as usize).wrapping_sub(1)).copied()
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// Aggregates one interval. `known` are the values present, in time order; `slots` is how
    /// many points the interval has in all (only avg_zero counts the missing ones, as zeros).
    /// Sums run left to right, as CPython 3.11's `sum()` does, so that results match to the bit.
    pub fn aggregate(self, known: &[f64], slots: usize) -> Option<f64> {
        let first = *known.first()?;
        let python_sum = |values: &[f64]| values.iter().fold(0.0_f64, |acc, v| acc + v);
        Some(match self {
            AggregationMethod::Average => python_sum(known) / known.len() as f64,
            AggregationMethod::Sum => python_sum(known),
            AggregationMethod::Last => known[known.len() - 1],
            // Python's max/min keep the first candidate unless a later one is strictly
            // greater/less, so a leading NaN sticks and a later NaN is never chosen.
            AggregationMethod::Max => known[1..]
                .iter()
                .fold(first, |m, &v| if v > m { v } else { m }),
            AggregationMethod::Min => known[1..]
                .iter()
                .fold(first, |m, &v| if v < m { v } else { m }),
            AggregationMethod::AvgZero => python_sum(known) / slots as f64,
            AggregationMethod::AbsMax => {
                known[1..]
                    .iter()
                    .fold(first, |m, &v| if v.abs() > m.abs() { v } else { m })
            }
            AggregationMethod::AbsMin => {
                known[1..]
                    .iter()
                    .fold(first, |m, &v| if v.abs() < m.abs() { v } else { m })
            }
        })
    }
}

impl fmt::Display for AggregationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AggregationMethod {
    type Err = WhisperError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| WhisperError::InvalidAggregationMethod(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for m in AggregationMethod::ALL {
            assert_eq!(AggregationMethod::from_code(m.code()), Some(m));
            assert_eq!(m.name().parse::<AggregationMethod>().unwrap(), m);
        }
        assert_eq!(AggregationMethod::from_code(0), None);
        assert_eq!(AggregationMethod::from_code(9), None);
        assert!("median".parse::<AggregationMethod>().is_err());
    }

    #[test]
    fn python_semantics() {
        use AggregationMethod::*;
        assert_eq!(AbsMax.aggregate(&[-5.0, 5.0], 2), Some(-5.0));
        assert_eq!(AbsMin.aggregate(&[3.0, -1.0, 1.0], 3), Some(-1.0));
        assert_eq!(AvgZero.aggregate(&[2.0, 4.0], 6), Some(1.0));
        assert_eq!(
            Sum.aggregate(&[-0.0], 1).map(|v| v.to_bits()),
            Some(0.0_f64.to_bits())
        );
        assert!(Max.aggregate(&[f64::NAN, 1.0], 2).unwrap().is_nan());
        assert_eq!(Max.aggregate(&[1.0, f64::NAN], 2), Some(1.0));
        assert_eq!(Average.aggregate(&[], 3), None);
    }
}
