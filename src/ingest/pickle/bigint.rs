//! Python ints outside `i64`, as far as carbon's pickle path needs them.
//!
//! A pickle can carry integers of any size (`LONG1`/`LONG4` bytes, protocol-0 `L` text), and
//! their fate in carbon depends on exact arithmetic: `float()` rounds half-to-even and raises
//! `OverflowError` (closing the connection) from 2**1024 up, and dict keys compare `1 == 1.0`.
//! Only construction, exact float conversion, comparison and decimal printing are needed, so
//! this is a small magnitude-limb type rather than a general bignum dependency.

/// A magnitude in little-endian `u32` limbs with a sign; always outside the `i64` range
/// (values that fit are kept as `i64` by [`Int`]), and never with a zero top limb.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BigInt {
    pub(crate) negative: bool,
    pub(crate) mag: Vec<u32>,
}

/// A Python int: small ones inline, big ones boxed so nodes stay compact.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Int {
    Small(i64),
    Big(Box<BigInt>),
}

fn trim(mag: &mut Vec<u32>) {
    while mag.last() == Some(&0) {
        mag.pop();
    }
}

impl Int {
    /// Builds an int from a sign and magnitude, demoting to `i64` when it fits.
    pub(crate) fn from_mag(negative: bool, mut mag: Vec<u32>) -> Int {
        trim(&mut mag);
        if mag.len() <= 2 {
            let m = mag.first().copied().unwrap_or(0) as u64
                | (mag.get(1).copied().unwrap_or(0) as u64) << 32;
            if !negative && m <= i64::MAX as u64 {
                return Int::Small(m as i64);
            }
            if negative && m <= 1u64 << 63 {
                return Int::Small((m as i64).wrapping_neg());
            }
        }
        Int::Big(Box::new(BigInt { negative, mag }))
    }

    /// Decodes little-endian two's complement, the `LONG1`/`LONG4` payload (empty is 0).
    pub(crate) fn from_le_twos(bytes: &[u8]) -> Int {
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut mag = Vec::with_capacity(bytes.len() / 4 + 1);
        // Negating two's complement limb by limb: invert everything, then add one.
        let mut carry = negative as u64;
        for chunk in bytes.chunks(4) {
            let mut limb = [if negative { 0xff } else { 0 }; 4];
            limb[..chunk.len()].copy_from_slice(chunk);
            let mut v = u32::from_le_bytes(limb) as u64;
            if negative {
                v = (!(v as u32)) as u64 + carry;
                carry = v >> 32;
            }
            mag.push(v as u32);
        }
        Int::from_mag(negative, mag)
    }

    /// Python's `float(int)`: round half to even; `None` is `OverflowError`.
    pub fn to_f64(&self) -> Option<f64> {
        match self {
            Int::Small(i) => Some(*i as f64),
            Int::Big(b) => b.to_f64(),
        }
    }

    /// Exact comparison with a float, as Python's `==` between int and float.
    pub(crate) fn eq_f64(&self, f: f64) -> bool {
        if !f.is_finite() || f.fract() != 0.0 {
            return false;
        }
        match self {
            Int::Small(i) => {
                // i64 -> f64 can round, so compare on the float side only when exact.
                (i64::MIN as f64..-(i64::MIN as f64)).contains(&f) && f as i64 == *i
            }
            Int::Big(b) => b.to_f64_exact() == Some(f),
        }
    }

    /// Decimal digits, as `repr(int)`.
    pub fn to_decimal(&self) -> String {
        match self {
            Int::Small(i) => i.to_string(),
            Int::Big(b) => b.to_decimal(),
        }
    }
}

impl BigInt {
    fn bit_length(&self) -> u64 {
        let top = self.mag.last().copied().unwrap_or(0);
        (self.mag.len() as u64 - 1) * 32 + (32 - top.leading_zeros() as u64)
    }

    fn bit(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        self.mag.get(limb).is_some_and(|l| l >> (i % 32) & 1 == 1)
    }

    fn any_below(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        if self.mag[..limb.min(self.mag.len())].iter().any(|&l| l != 0) {
            return true;
        }
        let rem = i % 32;
        rem != 0
            && self
                .mag
                .get(limb)
                .is_some_and(|l| l & ((1u32 << rem) - 1) != 0)
    }

    fn to_f64(&self) -> Option<f64> {
        let len = self.bit_length();
        // Top 53 bits, then the guard bit and sticky bits decide the rounding.
        let mut m: u64 = 0;
        for k in 0..53 {
            m = m << 1 | self.bit(len - 1 - k) as u64;
        }
        let guard = self.bit(len - 54);
        let sticky = self.any_below(len - 54);
        let mut exp = len; // value = m * 2^(exp - 53)
        if guard && (sticky || m & 1 == 1) {
            m += 1;
            if m == 1 << 53 {
                m >>= 1;
                exp += 1;
            }
        }
        if exp > 1024 {
            return None;
        }
        let bits = ((exp - 1 + 1023) << 52) | (m & ((1 << 52) - 1));
        let v = f64::from_bits(bits);
        Some(if self.negative { -v } else { v })
    }

    fn to_f64_exact(&self) -> Option<f64> {
        let len = self.bit_length();
        if len > 1024 || (len > 53 && self.any_below(len - 53)) {
            return None;
        }
        self.to_f64()
    }

    fn to_decimal(&self) -> String {
        let mut mag = self.mag.clone();
        let mut chunks = Vec::new();
        while !mag.is_empty() {
            let mut rem: u64 = 0;
            for limb in mag.iter_mut().rev() {
                let cur = rem << 32 | *limb as u64;
                *limb = (cur / 1_000_000_000) as u32;
                rem = cur % 1_000_000_000;
            }
            trim(&mut mag);
            chunks.push(rem as u32);
        }
        let mut out = String::from(if self.negative { "-" } else { "" });
        for (i, c) in chunks.iter().rev().enumerate() {
            if i == 0 {
                out.push_str(&c.to_string());
            } else {
                out.push_str(&format!("{c:09}"));
            }
        }
        out
    }
}

/// Accumulates digits of one base into a magnitude.
pub(crate) struct MagBuilder {
    mag: Vec<u32>,
}

impl MagBuilder {
    pub(crate) fn new() -> Self {
        MagBuilder { mag: Vec::new() }
    }

    /// `mag = mag * mul + add`; quadratic overall, which is why callers bound decimal input
    /// (Python's own 4300-digit limit) and feed power-of-two bases through [`push_bits`].
    pub(crate) fn mul_add(&mut self, mul: u32, add: u32) {
        let mut carry = add as u64;
        for limb in self.mag.iter_mut() {
            let v = *limb as u64 * mul as u64 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.mag.push(carry as u32);
        }
    }

    pub(crate) fn finish(self, negative: bool) -> Int {
        Int::from_mag(negative, self.mag)
    }
}

/// Builds a magnitude from digits of a power-of-two base (most significant first), linear time.
pub(crate) fn from_pow2_digits(digits: &[u8], bits_per_digit: u32) -> Vec<u32> {
    let mut mag = Vec::with_capacity(digits.len() * bits_per_digit as usize / 32 + 1);
    let mut acc: u64 = 0;
    let mut nbits = 0;
    for &d in digits.iter().rev() {
        acc |= (d as u64) << nbits;
        nbits += bits_per_digit;
        if nbits >= 32 {
            mag.push(acc as u32);
            acc >>= 32;
            nbits -= 32;
        }
    }
    if nbits > 0 {
        mag.push(acc as u32);
    }
    mag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twos_complement_round_trip() {
        assert_eq!(Int::from_le_twos(&[]), Int::Small(0));
        assert_eq!(Int::from_le_twos(&[0xff]), Int::Small(-1));
        assert_eq!(Int::from_le_twos(&[0x00, 0x80]), Int::Small(-32768));
        let big = Int::from_le_twos(&[0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(big.to_decimal(), "18446744073709551616");
        let neg = Int::from_le_twos(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(neg.to_decimal(), "-18446744073709551616");
        assert_eq!(
            Int::from_le_twos(&[0, 0, 0, 0, 0, 0, 0, 0x80]),
            Int::Small(i64::MIN)
        );
    }

    #[test]
    fn float_rounding_matches_python() {
        let two64 = Int::from_le_twos(&[0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(two64.to_f64(), Some(18446744073709551616.0));
        let huge = Int::from_mag(false, vec![0; 33]);
        assert_eq!(huge, Int::Small(0));
        let mut mag = vec![0u32; 32];
        mag.push(1); // 2**1024
        assert_eq!(Int::from_mag(false, mag).to_f64(), None);
        let max = Int::from_mag(false, {
            let mut m = vec![0u32; 32];
            m[31] = 0xffff_ffff; // (2**53 - 1) * 2**971 = f64::MAX
            m[30] = 0xffff_f800;
            m
        });
        assert_eq!(max.to_f64(), Some(f64::MAX));
    }
}
