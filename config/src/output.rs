//! Standard output of the user commands. `println!` panics when the reader
//! has gone (`mfa-enroll --list | head -n 1`), printing a panic message at
//! the user; C programs die of SIGPIPE there, quietly. [`say!`] does the
//! same without unsafe code: it ends the program with status 141 (what a
//! shell shows for death by SIGPIPE).

use std::io::Write;

/// Writes `text` to standard output and flushes it. A reader that has gone
/// ends the program quietly (141); another failure is said on standard
/// error and ends it with 74 (EX_IOERR).
pub fn write_out(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("cannot write to standard output: {e}");
            std::process::exit(74);
        }
    }
}

/// `println!` that stops quietly when standard output's reader is gone.
#[macro_export]
macro_rules! say {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` (flushed) that stops quietly when standard output's reader is gone.
#[macro_export]
macro_rules! say_part {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}
