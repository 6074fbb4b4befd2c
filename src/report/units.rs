//! Human units for tables and Markdown: thousands separators, SI (K/M/G/T, powers of 1000) for
//! counts, IEC (KiB/MiB/GiB, powers of 1024) for bytes, percentages.

/// `26218496` → `26,218,496`.
pub fn count(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Three significant digits: `415.33` → `415`, `26.21` → `26.2`, `1.009` → `1.01`.
fn sig3(x: f64) -> String {
    if x >= 99.95 {
        format!("{x:.0}")
    } else if x >= 9.995 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Scale `v` by `base` until it is below `base`, as three significant digits and a unit.
fn scaled(v: u64, base: f64, units: &[&'static str]) -> (String, &'static str) {
    let mut x = v as f64 / base;
    let mut u = 0;
    while x >= base - 0.5 && u + 1 < units.len() {
        x /= base;
        u += 1;
    }
    // 999.7K rounds to "1000": move up a unit instead.
    if x >= 999.5 && u + 1 < units.len() {
        x /= base;
        u += 1;
    }
    (sig3(x), units[u])
}

/// `415334400` → `415M`, `1009945728` → `1.01G` (three significant digits, powers of 1000);
/// below 1000 the number itself.
pub fn si(v: u64) -> String {
    if v < 1000 {
        return v.to_string();
    }
    let (x, u) = scaled(v, 1000.0, &["K", "M", "G", "T", "P", "E"]);
    format!("{x}{u}")
}

/// `1119744` → `1.07 MiB` (three significant digits, powers of 1024); below 1024 `N B`.
pub fn bytes(v: u64) -> String {
    if v < 1024 {
        return format!("{v} B");
    }
    let (x, u) = scaled(v, 1024.0, &["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]);
    format!("{x} {u}")
}

/// `part / whole` as `51.6%`; `-` when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> String {
    format!("{}%", share(part, whole))
}

/// `part / whole` in percent with one decimal, without the sign (`51.6`); `-` when `whole` is 0.
pub fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}", part as f64 * 100.0 / whole as f64)
}

/// A signed percentage with one decimal that never reads `-0.0%` or `+0.0%`: a change that
/// rounds to zero but is not zero is `+<0.1%` or `-<0.1%`; zero is `0.0%`.
pub fn signed_percent(p: f64) -> String {
    if p != 0.0 && p.abs() < 0.05 {
        return format!("{}<0.1%", if p > 0.0 { '+' } else { '-' });
    }
    let s = format!("{p:+.1}%");
    if s == "-0.0%" || s == "+0.0%" {
        "0.0%".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(count(26_218_496), "26,218,496");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(si(415_334_400), "415M");
        assert_eq!(si(26_214_400), "26.2M");
        assert_eq!(si(1_009_945_728), "1.01G");
        assert_eq!(si(999_999), "1.00M");
        assert_eq!(si(999_400), "999K");
        assert_eq!(bytes(1023), "1023 B");
        // 96·54·54·4 = 1,119,744 B = 1.068 MiB
        assert_eq!(bytes(1_119_744), "1.07 MiB");
        // 26,218,496 / 50,844,008 = 0.5157 (seed article: FC1 holds 51.6%)
        assert_eq!(percent(26_218_496, 50_844_008), "51.6%");
        assert_eq!(percent(1, 0), "-%");
        assert_eq!(share(1, 0), "-");
        // 259,584 B = 253.5 KiB → three digits "254 KiB"
        assert_eq!(bytes(259_584), "254 KiB");
    }
}
