//! The `netstat` binary: parse the command line, run, map errors to exit codes
//! (2 for bad input, 1 for other failures, 0 on a closed pipe).

use clap::Parser;
use netstat::cli::{run, Cli};
use netstat::Error;

/// Count every heap byte, so `netstat measure` reports exact live and peak memory.
#[global_allocator]
static ALLOC: netstat::measure::alloc::Counting = netstat::measure::alloc::Counting;

fn main() {
    // candle attaches a captured backtrace to its errors' messages when RUST_BACKTRACE is set;
    // error messages are for users, so library backtraces stay off unless asked for by
    // RUST_LIB_BACKTRACE itself (panics still follow RUST_BACKTRACE). Set before any thread.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(e) = netstat::cli::mistyped_command(&args) {
        eprintln!("error: {}", netstat::error::one_line(&e.to_string()));
        std::process::exit(e.exit_code());
    }
    let cli = Cli::parse_from(args);
    if let Err(e) = netstat::report::interrupt::install() {
        eprintln!("warning: {}", netstat::error::one_line(&e.to_string()));
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match run(cli, &mut lock) {
        Ok(()) => {}
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            drop(lock);
            // One line, whatever the message holds (names and paths come from the user).
            eprintln!("error: {}", netstat::error::one_line(&e.to_string()));
            std::process::exit(e.exit_code());
        }
    }
}
