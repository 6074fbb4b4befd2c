//! The hardware catalog: peak FLOP/s, memory bandwidth and memory size of a device, read from
//! `hardware/*.yaml` (each file cites its vendor datasheet in a header comment).
//!
//! The catalog files are compiled in, so `--hardware h200` works from any directory; any other
//! argument with a `/` or a `.yaml`/`.yml` suffix is read as a file of the same format. Errors
//! point at `FILE:LINE:COL` (exit code 2).
//!
//! File format (every rate per second, every size in bytes):
//! ```yaml
//! name: h200
//! description: NVIDIA H200 SXM 141 GB
//! kind: gpu                          # gpu or cpu
//! fp32_flops_per_s: 67e12            # FP32 FMA peak, FLOPs (an FMA is 2)
//! fp16_flops_per_s: 989.5e12         # optional: FP16 (tensor core, dense) peak
//! bf16_flops_per_s: 989.5e12         # optional: BF16 (tensor core, dense) peak
//! memory_bandwidth_bytes_per_s: 4.8e12
//! memory_bytes: 151397597184
//! source: https://www.nvidia.com/en-us/data-center/h200/
//! date: 2026-11-29                   # optional (measured entries): when
//! threads: 2                         # optional (measured entries): threads used
//! ```

use crate::error::{LayerRef, SpecError};
use crate::shape::DType;
use crate::spec::fields::Fields;
use crate::spec::node::Value;

/// The compiled-in catalog: `(name, YAML text)`, one per file in `hardware/`.
pub const CATALOG: &[(&str, &str)] = &[
    ("gtx580", include_str!("../hardware/gtx580.yaml")),
    ("v100", include_str!("../hardware/v100.yaml")),
    ("a100", include_str!("../hardware/a100.yaml")),
    ("h100", include_str!("../hardware/h100.yaml")),
    ("h200", include_str!("../hardware/h200.yaml")),
    ("this-cpu", include_str!("../hardware/this-cpu.yaml")),
];

/// Fields a hardware file may have.
pub const FIELDS: &[&str] = &[
    "name",
    "description",
    "kind",
    "fp32_flops_per_s",
    "fp16_flops_per_s",
    "bf16_flops_per_s",
    "memory_bandwidth_bytes_per_s",
    "memory_bytes",
    "source",
    "date",
    "threads",
];

/// One device: its peaks and memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Hardware {
    /// Short name (`h200`).
    pub name: String,
    /// Human description (`NVIDIA H200 SXM 141 GB (Hopper, 2024)`).
    pub description: String,
    /// `gpu` or `cpu`.
    pub kind: String,
    /// Peak FP32 FLOP/s (FMA = 2 FLOPs).
    pub fp32_flops_per_s: f64,
    /// Peak FP16 FLOP/s (tensor cores, dense), if the device has a faster FP16 path.
    pub fp16_flops_per_s: Option<f64>,
    /// Peak BF16 FLOP/s (tensor cores, dense), if the device has one.
    pub bf16_flops_per_s: Option<f64>,
    /// Peak memory bandwidth, bytes/s.
    pub memory_bandwidth_bytes_per_s: f64,
    /// Memory size, bytes.
    pub memory_bytes: u64,
    /// Where the numbers come from (URL, or `measured by netstat peak`).
    pub source: String,
    /// For measured entries: the date measured (`YYYY-MM-DD`).
    pub date: Option<String>,
    /// For measured entries: threads used.
    pub threads: Option<u64>,
}

impl Hardware {
    /// Peak FLOP/s for arithmetic in `dtype`, and which peak it is (`fp32`, `fp16`, `bf16`).
    ///
    /// f16 and bf16 use the tensor-core peak where the device has one, else FP32 (Fermi, Volta
    /// for bf16, CPUs); every other dtype uses FP32 (f64 is not in the catalog: FP32 is an
    /// upper bound there).
    pub fn peak_flops_per_s(&self, dtype: DType) -> (f64, &'static str) {
        match dtype {
            DType::F16 => self.fp16_flops_per_s.map(|v| (v, "fp16")).unwrap_or((self.fp32_flops_per_s, "fp32")),
            DType::Bf16 => self.bf16_flops_per_s.map(|v| (v, "bf16")).unwrap_or((self.fp32_flops_per_s, "fp32")),
            _ => (self.fp32_flops_per_s, "fp32"),
        }
    }

    /// The ridge point of the roofline: peak FLOP/s ÷ bandwidth, FLOPs per byte.
    pub fn ridge_flops_per_byte(&self, dtype: DType) -> f64 {
        self.peak_flops_per_s(dtype).0 / self.memory_bandwidth_bytes_per_s
    }
}

/// Names of the compiled-in catalog entries.
pub fn names() -> impl Iterator<Item = &'static str> {
    CATALOG.iter().map(|(n, _)| *n)
}

/// Largest hardware file read, bytes.
pub const MAX_HARDWARE_BYTES: u64 = 1 << 20;

/// Resolve `--hardware ARG`: a catalog name (`h200`), or a path to a hardware YAML file (any
/// argument containing `/` or ending in `.yaml`/`.yml`).
///
/// Errors: unknown name (with "did you mean"), unreadable file, or a bad file (`FILE:LINE:COL`).
pub fn resolve(arg: &str) -> Result<Hardware, crate::Error> {
    if arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml") {
        // Regular files only, at most 1 MiB (a hardware file is a dozen lines; `/dev/zero` read 2 GiB).
        let bytes = crate::files::read_user_file(arg, MAX_HARDWARE_BYTES, false, "hardware files")?;
        let text = String::from_utf8(bytes).map_err(|e| {
            crate::Error::Usage(format!("{arg}: not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()))
        })?;
        return Ok(parse(arg, &text)?);
    }
    match CATALOG.iter().find(|(n, _)| *n == arg) {
        Some((n, text)) => Ok(parse(&format!("hardware/{n}.yaml"), text)?),
        None => Err(crate::Error::Usage(format!(
            "--hardware: unknown device `{arg}`{}; expected one of: {} (or a path to a hardware .yaml file)",
            crate::error::did_you_mean(arg, names()),
            names().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Smallest FLOP/s or bytes/s a hardware file may give: 1,000 (below it, or at 1e-320, a
/// roofline time is infinite or meaningless: "predicted inf s" before).
pub const MIN_RATE: f64 = 1e3;

/// Largest rate: 10²¹ per second (an H200 does about 10¹⁵ FLOP/s).
pub const MAX_RATE: f64 = 1e21;

/// Parse a hardware file; `file` names it in messages.
///
/// Errors (`FILE:LINE:COL: …`): bad YAML, not a mapping, unknown or missing fields, rates that
/// are not positive finite numbers, a memory size that is not a positive integer.
pub fn parse(file: &str, text: &str) -> Result<Hardware, SpecError> {
    let root = crate::spec::parse_yaml(file, text)?;
    let Value::Map(entries) = &root.value else {
        return Err(SpecError::new(
            file,
            root.loc,
            format!("expected a mapping with `name`, `fp32_flops_per_s`, …, got {}", root.value.type_name()),
        ));
    };
    for (k, _) in entries {
        match &k.value {
            Value::Str(s) if FIELDS.contains(&s.as_str()) => {}
            Value::Str(s) => {
                return Err(SpecError::new(
                    file,
                    k.loc,
                    format!(
                        "unknown field `{s}`{}; expected one of: {}",
                        crate::error::did_you_mean(s, FIELDS.iter().copied()),
                        FIELDS.join(", ")
                    ),
                ))
            }
            _ => return Err(SpecError::new(file, k.loc, "expected a field name")),
        }
    }
    let top = LayerRef { index: 0, name: String::new(), kind: String::new() };
    let f = Fields { file, node: &root, layer: &top };
    let strip = |e: SpecError| SpecError { layer: None, ..e };
    let missing = |key: &str| SpecError::new(file, root.loc, format!("missing required field `{key}`"));
    // Text fields are printed in tables and messages: printable, one line.
    let text = |key: &'static str| -> Result<Option<String>, SpecError> {
        let v = f.str(key).map_err(strip)?;
        if let Some(c) = v.and_then(|v| v.chars().find(|c| c.is_control())) {
            let msg = format!(
                "`{key}`: control character {} (hardware text must be printable, one line)",
                crate::error::quote_char(c)
            );
            return Err(SpecError::new(file, f.loc(key), msg));
        }
        Ok(v.map(str::to_owned))
    };
    let req_str = |key: &'static str| -> Result<String, SpecError> { text(key)?.ok_or_else(|| missing(key)) };
    let rate = |key: &'static str| -> Result<Option<f64>, SpecError> {
        match f.float(key).map_err(strip)? {
            Some(v) if (MIN_RATE..=MAX_RATE).contains(&v) => Ok(Some(v)),
            Some(v) => Err(SpecError::new(
                file,
                f.loc(key),
                format!("`{key}`: expected a rate from {MIN_RATE:e} to {MAX_RATE:e} per second, got {v:e}"),
            )),
            None => Ok(None),
        }
    };
    let kind = req_str("kind")?;
    if kind != "gpu" && kind != "cpu" {
        return Err(SpecError::new(file, f.loc("kind"), format!("`kind`: expected `gpu` or `cpu`, got `{kind}`")));
    }
    let date = match f.get("date") {
        // An unquoted 2026-11-29 is a string to our YAML reader; accept any scalar spelling.
        Some(n) => Some(match &n.value {
            Value::Str(s) => s.clone(),
            _ => return Err(SpecError::new(file, n.loc, "`date`: expected a date such as 2026-11-29")),
        }),
        None => None,
    };
    Ok(Hardware {
        name: req_str("name")?,
        description: text("description")?.unwrap_or_default(),
        kind,
        fp32_flops_per_s: rate("fp32_flops_per_s")?.ok_or_else(|| missing("fp32_flops_per_s"))?,
        fp16_flops_per_s: rate("fp16_flops_per_s")?,
        bf16_flops_per_s: rate("bf16_flops_per_s")?,
        memory_bandwidth_bytes_per_s: rate("memory_bandwidth_bytes_per_s")?
            .ok_or_else(|| missing("memory_bandwidth_bytes_per_s"))?,
        memory_bytes: f.pos("memory_bytes").map_err(strip)?.ok_or_else(|| missing("memory_bytes"))?,
        source: req_str("source")?,
        date,
        threads: f.pos("threads").map_err(strip)?,
    })
}

/// Write a hardware file (the format [`parse`] reads), with a header comment.
pub fn to_yaml(h: &Hardware, header: &str) -> String {
    let mut s = String::new();
    for line in header.lines() {
        s.push_str("# ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str(&format!("name: {}\n", h.name));
    s.push_str(&format!("description: \"{}\"\n", h.description.replace('\\', "\\\\").replace('"', "\\\"")));
    s.push_str(&format!("kind: {}\n", h.kind));
    s.push_str(&format!("fp32_flops_per_s: {:e}\n", h.fp32_flops_per_s));
    if let Some(v) = h.fp16_flops_per_s {
        s.push_str(&format!("fp16_flops_per_s: {v:e}\n"));
    }
    if let Some(v) = h.bf16_flops_per_s {
        s.push_str(&format!("bf16_flops_per_s: {v:e}\n"));
    }
    s.push_str(&format!("memory_bandwidth_bytes_per_s: {:e}\n", h.memory_bandwidth_bytes_per_s));
    s.push_str(&format!("memory_bytes: {}\n", h.memory_bytes));
    s.push_str(&format!("source: \"{}\"\n", h.source.replace('"', "'")));
    if let Some(d) = &h.date {
        s.push_str(&format!("date: \"{d}\"\n"));
    }
    if let Some(t) = h.threads {
        s.push_str(&format!("threads: {t}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_parses_and_is_named_after_its_file() {
        for (name, text) in CATALOG {
            let h = parse(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&h.name, name);
            if *name == "this-cpu" {
                assert_eq!((h.kind.as_str(), h.threads), ("cpu", Some(2)));
                assert!(h.date.is_some());
            } else {
                assert_eq!(h.kind, "gpu");
                assert!(h.source.starts_with("https://"), "{name}: {}", h.source);
            }
        }
    }

    #[test]
    fn catalog_numbers_are_the_datasheets() {
        // GTX 580: 512 cores × 2 × 1.544 GHz = 1.581056e12; 384/8 B × 4.008 GT/s = 192.384e9 B/s; 3 GiB.
        let g = resolve("gtx580").unwrap();
        assert_eq!(g.fp32_flops_per_s, 512.0 * 2.0 * 1.544e9);
        assert_eq!(g.memory_bandwidth_bytes_per_s, 48.0 * 4.008e9);
        assert_eq!(g.memory_bytes, 3 << 30);
        // No half-precision path on Fermi: f16 falls back to FP32.
        assert_eq!(g.peak_flops_per_s(DType::F16), (1.581056e12, "fp32"));
        // V100: 125 TFLOPS FP16 tensor, no BF16.
        let v = resolve("v100").unwrap();
        assert_eq!(v.peak_flops_per_s(DType::F16), (125e12, "fp16"));
        assert_eq!(v.peak_flops_per_s(DType::Bf16), (15.7e12, "fp32"));
        // H200: 1,979 TFLOPS BF16 with sparsity → 989.5 dense; 4.8 TB/s; ridge 67e12 / 4.8e12 = 13.958.
        let h = resolve("h200").unwrap();
        assert_eq!(h.peak_flops_per_s(DType::Bf16), (989.5e12, "bf16"));
        assert!((h.ridge_flops_per_byte(DType::F32) - 67.0 / 4.8).abs() < 1e-12);
        assert_eq!(h.memory_bytes, 141 << 30);
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        let e = resolve("h20").unwrap_err().to_string();
        assert!(e.contains("unknown device `h20` (did you mean `h200`?)"), "{e}");
        assert!(e.contains("gtx580, v100, a100, h100, h200, this-cpu"), "{e}");
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let text = "name: x\nkind: gpu\nfp32_flops_per_s: -1\n";
        let e = parse("x.yaml", text).unwrap_err().to_string();
        assert_eq!(e, "x.yaml:3:19: `fp32_flops_per_s`: expected a rate from 1e3 to 1e21 per second, got -1e0");
        // 1e-320 is positive but printed "predicted inf s" before.
        let e = parse("x.yaml", "name: x\nkind: gpu\nfp32_flops_per_s: 1e-320\n").unwrap_err().to_string();
        assert_eq!(e, "x.yaml:3:19: `fp32_flops_per_s`: expected a rate from 1e3 to 1e21 per second, got 1e-320");
        let e = parse("x.yaml", "name: x\nkind: gpu\nfp32_flop_per_s: 1\n").unwrap_err().to_string();
        assert!(e.starts_with("x.yaml:3:1: unknown field `fp32_flop_per_s` (did you mean `fp32_flops_per_s`?)"), "{e}");
        let e = parse("x.yaml", "name: x\nkind: tpu\n").unwrap_err().to_string();
        assert_eq!(e, "x.yaml:2:7: `kind`: expected `gpu` or `cpu`, got `tpu`");
        let e = parse("x.yaml", "name: x\nkind: gpu\nfp32_flops_per_s: 1e12\n").unwrap_err().to_string();
        assert_eq!(e, "x.yaml:1:1: missing required field `memory_bandwidth_bytes_per_s`");
        // An ESC sequence or a newline in a name would drive the terminal or forge a line.
        let e = parse("x.yaml", "name: \"\\e[31mX\\nforged\"\nkind: gpu\n").unwrap_err().to_string();
        assert_eq!(e, "x.yaml:1:7: `name`: control character `\\u{1b}` (hardware text must be printable, one line)");
        let e = parse("x.yaml", "name: x\ndescription: \"a\\rb\"\nkind: gpu\n").unwrap_err().to_string();
        assert!(e.starts_with("x.yaml:2:14: `description`: control character `\\r`"), "{e}");
        let e = parse("x.yaml", "name: [x\n").unwrap_err().to_string();
        assert!(e.starts_with("x.yaml:"), "{e}");
    }

    #[test]
    fn written_files_read_back() {
        let h = Hardware {
            name: "this-cpu".into(),
            description: "Intel(R) Xeon(R) \"Processor\"".into(),
            kind: "cpu".into(),
            fp32_flops_per_s: 1.9e11,
            fp16_flops_per_s: None,
            bf16_flops_per_s: None,
            memory_bandwidth_bytes_per_s: 1.2e10,
            memory_bytes: 8 << 30,
            source: "measured by `netstat peak`".into(),
            date: Some("2026-11-29".into()),
            threads: Some(2),
        };
        assert_eq!(parse("t.yaml", &to_yaml(&h, "header\nline 2")).unwrap(), h);
    }
}
