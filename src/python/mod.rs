//! CPython 3.11's behaviour, reproduced wherever carbon, whisper.py or graphite-web let it
//! leak into what Carbide accepts or prints.
//!
//! Carbide replaces Python programs whose observable behaviour is partly Python's own: carbon
//! reads plaintext lines with `str.strip().split()` and `float()`, and its config files with
//! `strip()`, `int()` and `float()`; whisper.py's scripts parse arguments with `float()`,
//! `int()` and optparse and print with `repr(float)`, `%g`, `str(list)` and `json.dumps`;
//! error messages quote with `repr(str)`. Clients and scripts depend on exactly that (which
//! lines are accepted, which digits a value prints with), so Carbide reproduces CPython 3.11's
//! rules exactly rather than Rust's near equivalents, whose Unicode tables and grammars differ
//! at the edges. Each rule is written down once, here, and tested against the interpreter of
//! the test venv:
//!
//! - [`text`]: `str` methods (`isspace`, `strip`, `rstrip`, `split`, `splitlines`,
//!   `isprintable`, `isdecimal`) and `repr(str)`;
//! - [`number`]: `float(str)`, `int(str)`, `int(str, radix)` and optparse's int conversion;
//! - [`format`]: `repr(float)`, printf `%f`/`%e`/`%g`, `str(list)` and `json.dumps`.

pub mod format;
pub mod number;
pub mod text;
