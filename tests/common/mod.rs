//! Helpers shared by the integration tests that measure candle's memory against the model.

use netstat::measure::result::Measured;
use netstat::report::measured::error_percent;

/// A training run's retained bytes against the candle model: every layer within `pct` % or
/// `slack` bytes (candle's few hundred bytes of bookkeeping per op, Arc'd storage, layout and
/// the op node, which the model leaves out, matter only for tiny tensors; a layer measured at
/// 0 B has no relative error and passes only within the slack), and the total within 1.5 %.
pub fn check_retained(r: &Measured, pct: f64, slack: u64) {
    let (mut measured, mut predicted) = (0, 0);
    for m in &r.layers {
        let (got, want) = (m.retained_bytes.unwrap(), m.predicted_candle_retained_bytes.unwrap());
        measured += got;
        predicted += want;
        let e = error_percent(want, got).unwrap_or(f64::INFINITY);
        assert!(
            e.abs() <= pct || got.abs_diff(want) <= slack,
            "{}: retained {got} measured, {want} predicted ({e:+.1}%)",
            m.name
        );
    }
    let e = error_percent(predicted, measured).unwrap();
    assert!(e.abs() <= 1.5, "retained in total: {predicted} predicted vs {measured} measured ({e:+.2}%)");
}
