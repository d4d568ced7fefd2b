//! Stage timings: how long each step of a pipeline took (the `--timings` lines).

use std::time::Instant;

/// How long one pipeline stage took.
///
/// ```
/// use som_core::StageTiming;
/// let t = StageTiming { stage: "allocate".into(), ms: 1.5 };
/// assert_eq!(t.to_json_line(), r#"{"stage":"allocate","ms":1.5}"#);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StageTiming {
    /// Stage name: `segment`, `allocate`, `render`…
    pub stage: String,
    /// Wall-clock milliseconds.
    pub ms: f64,
}

impl StageTiming {
    /// Times `f` as stage `stage`.
    pub fn measure<T>(stage: &str, f: impl FnOnce() -> T) -> (T, StageTiming) {
        let t0 = Instant::now();
        let out = f();
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        (
            out,
            StageTiming {
                stage: stage.to_string(),
                ms,
            },
        )
    }

    /// The `--timings` line: `{"stage":"allocate","ms":1.93}`.
    pub fn to_json_line(&self) -> String {
        // Written by hand so the keys keep this order (serde_json's map is sorted).
        let stage = serde_json::Value::String(self.stage.clone());
        let ms = serde_json::json!((self.ms * 1000.0).round() / 1000.0);
        format!("{{\"stage\":{stage},\"ms\":{ms}}}")
    }
}
