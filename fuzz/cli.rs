//! The command line the `cli` fuzz target drives, shared with `tests/fuzz_regressions.rs`:
//! arguments split from the input at NUL bytes, parsed by clap as `netstat ARGS…`, then every
//! override and value netstat parses from them (--input dims, --batch, --fit sizes, device
//! names, hardware names) is parsed the way the commands parse it — without running a command
//! (no file is read or written, nothing is measured).
//!
//! The property: a parse or a usage error, never a panic.

use clap::{CommandFactory, FromArgMatches};
use netstat::cli::{Cli, Command};
use std::cell::RefCell;

thread_local! {
    /// The clap command, built once: building it (every subcommand and argument) costs more than
    /// parsing one command line, and `try_get_matches_from_mut` parses without consuming it.
    static COMMAND: RefCell<clap::Command> = RefCell::new(Cli::command());
}

/// Parse `data` as `netstat ARGS…` (arguments separated by NUL bytes, UTF-8 lossily).
pub fn run(data: &[u8]) {
    let args: Vec<String> = data.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    // Every argument also through the value parsers directly, whatever clap made of it.
    for a in &args {
        let _ = netstat::analysis::parse_dims(a);
        let _ = netstat::memory::parse_size(a);
        let _ = a.parse::<netstat::measure::device::Target>();
        if !a.contains('/') && !a.ends_with(".yaml") && !a.ends_with(".yml") {
            // Catalog names only: a path would read a file.
            let _ = netstat::hardware::resolve(a);
        }
        let _ = netstat::error::one_line(a);
        let _ = netstat::spec::bad_name(a);
    }
    let argv: Vec<String> = std::iter::once("netstat".to_owned()).chain(args).collect();
    // The binary's first step: a mistyped subcommand gets "did you mean".
    let os: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
    if netstat::cli::mistyped_command(&os).is_some() {
        return;
    }
    let Ok(matches) = COMMAND.with(|c| c.borrow_mut().try_get_matches_from_mut(&argv)) else { return };
    let Ok(cli) = Cli::from_arg_matches(&matches) else { return };
    let spec_args = match &cli.command {
        None => Some(&cli.analyze.spec_args),
        Some(Command::Analyze(a)) => Some(&a.spec_args),
        Some(Command::Memory(m)) => {
            if let Some(f) = &m.fit {
                let _ = netstat::memory::parse_size(f);
            }
            Some(&m.spec_args)
        }
        Some(Command::Diff(d)) => Some(&d.spec_args),
        Some(Command::Measure(m)) => Some(&m.spec_args),
        _ => None,
    };
    if let Some(s) = spec_args {
        let _ = s.overrides();
    }
}
