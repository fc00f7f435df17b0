//! llama.cpp's, ggml's and mtmd's own log lines, routed into `tracing` at crow's levels.
//!
//! llama.cpp logs every model load and every decode at INFO (hundreds of lines per analysed batch). crow
//! keeps errors and warnings at their level and turns everything else into `debug`, under the target
//! `llama_cpp`, so that `crow serve` at the default level shows crow's own lines and
//! `CROW_LOG=info,llama_cpp=debug` brings llama.cpp's back.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};

use llama_cpp_sys_2 as sys;

/// Installs the callback for llama.cpp, ggml and mtmd (process-wide; later calls change nothing).
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `log` is a plain function with the C signature ggml expects; it keeps no pointer to
        // `text` beyond the call and needs no user data.
        unsafe {
            sys::llama_log_set(Some(log), std::ptr::null_mut());
            sys::mtmd_helper_log_set(Some(log), std::ptr::null_mut());
            // After llama: setting llama's callback also sets ggml's.
            sys::ggml_log_set(Some(log), std::ptr::null_mut());
        }
    });
}

/// How a llama.cpp level shows in crow's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Error,
    Warn,
    Debug,
}

fn level(raw: sys::ggml_log_level) -> Level {
    match raw {
        sys::GGML_LOG_LEVEL_ERROR => Level::Error,
        sys::GGML_LOG_LEVEL_WARN => Level::Warn,
        _ => Level::Debug,
    }
}

thread_local! {
    /// A line being assembled: llama.cpp writes some lines in pieces (CONT messages, or no newline).
    static LINE: RefCell<(Level, String)> = const { RefCell::new((Level::Debug, String::new())) };
}

fn emit(level: Level, line: &str) {
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    match level {
        Level::Error => tracing::error!(target: "llama_cpp", "{line}"),
        Level::Warn => tracing::warn!(target: "llama_cpp", "{line}"),
        Level::Debug => tracing::debug!(target: "llama_cpp", "{line}"),
    }
}

/// Appends `text` at `raw` level to this thread's pending line and emits every completed line.
fn push(raw: sys::ggml_log_level, text: &str) {
    let _ = LINE.try_with(|pending| {
        // Never panics across the C boundary: a re-entrant call (none is known) logs on its own.
        let Ok(mut pending) = pending.try_borrow_mut() else {
            emit(level(raw), text);
            return;
        };
        if raw != sys::GGML_LOG_LEVEL_CONT {
            if !pending.1.is_empty() {
                let (lvl, line) = std::mem::replace(&mut *pending, (level(raw), String::new()));
                emit(lvl, &line);
            }
            pending.0 = level(raw);
        }
        pending.1.push_str(text);
        if pending.1.ends_with('\n') {
            let lvl = pending.0;
            let line = std::mem::take(&mut pending.1);
            emit(lvl, &line);
        }
    });
}

extern "C" fn log(raw: sys::ggml_log_level, text: *const c_char, _user_data: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: ggml passes a NUL-terminated string that lives for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    push(raw, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_becomes_debug_and_warnings_stay_warnings() {
        assert_eq!(level(sys::GGML_LOG_LEVEL_INFO), Level::Debug);
        assert_eq!(level(sys::GGML_LOG_LEVEL_DEBUG), Level::Debug);
        assert_eq!(level(sys::GGML_LOG_LEVEL_WARN), Level::Warn);
        assert_eq!(level(sys::GGML_LOG_LEVEL_ERROR), Level::Error);
    }

    #[test]
    fn continued_pieces_make_one_line_at_the_first_piece_s_level() {
        push(sys::GGML_LOG_LEVEL_WARN, "model: ");
        push(sys::GGML_LOG_LEVEL_CONT, "half");
        LINE.with(|p| assert_eq!(*p.borrow(), (Level::Warn, "model: half".to_owned())));
        push(sys::GGML_LOG_LEVEL_CONT, " done\n");
        LINE.with(|p| assert!(p.borrow().1.is_empty()));
    }
}
