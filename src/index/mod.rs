//! The metric name tree: every metric the store holds, built from the whisper directory at start
//! and kept current as new metrics arrive, so that `/metrics/find`, `/metrics/expand` and the
//! globs in render targets never walk the directory per request.
