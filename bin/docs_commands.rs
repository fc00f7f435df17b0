//! The docs cannot go stale against the CLI: every `crow` command line in README.md and docs/*.md
//! (shell blocks, and `$ ` lines in output blocks) names subcommands that exist and flags that those
//! subcommands take. Synopsis lines (`crow products list|delete [ID] --org ORG`) count too: each
//! alternative of `a|b` is looked up, and every `--flag` on the line must belong to one of them.

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

/// README.md and every page of docs/.
fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The `crow` command lines of a page: `\`-continued lines joined, commented tails dropped, each
/// `crow ...` of a line (after `|`, `&&`, `$(`, environment assignments or a path to the binary) on its
/// own, from the word after `crow`.
fn command_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut fence: Option<String> = None;
    let mut joined = String::new();
    for line in text.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim().to_owned()),
            };
            continue;
        }
        let Some(kind) = &fence else { continue };
        let shell = matches!(kind.as_str(), "sh" | "bash" | "shell");
        let line = match line.strip_prefix("$ ") {
            Some(command) => command,
            None if shell => line,
            None => continue,
        };
        joined.push_str(line.trim_end_matches('\\'));
        joined.push(' ');
        if line.ends_with('\\') {
            continue;
        }
        let command = std::mem::take(&mut joined);
        let command = match command.find(" #") {
            Some(at) => &command[..at],
            None => command.as_str(),
        };
        if command.trim_start().starts_with('#') {
            continue;
        }
        // ` | ` is a pipe, or in a synopsis an alternative (`[--data JSON | --data-file F]`), which
        // goes on the command before it.
        let mut previous_was_crow = false;
        for piece in command.split(" | ") {
            if previous_was_crow && piece.trim_start().starts_with(['-', '[']) {
                if let Some(last) = out.last_mut() {
                    last.push(' ');
                    last.push_str(piece.trim());
                }
                continue;
            }
            previous_was_crow = false;
            for part in piece.split(['&', ';', '(', ')']) {
                let words: Vec<&str> = part.split_whitespace().collect();
                // Environment assignments and the binary's path come before its arguments.
                let start = words
                    .iter()
                    .position(|w| !w.contains('=') || w.starts_with('-'));
                let Some(start) = start else { continue };
                let program = words[start].trim_start_matches('$');
                if program == "crow" || program.ends_with("/crow") {
                    out.push(words[start + 1..].join(" "));
                    previous_was_crow = true;
                }
            }
        }
    }
    out
}

/// The subcommands a line names and the flags it uses that none of them takes.
fn unknown_flags(line: &str) -> Result<Vec<String>, String> {
    let mut commands = vec![crate::Cli::command()];
    let mut words = line.split_whitespace().peekable();
    // Walk down the subcommands the line names.
    while let Some(word) = words.peek() {
        // `list|delete`: each alternative.
        let found: Vec<clap::Command> = commands
            .iter()
            .flat_map(|c| {
                word.split('|')
                    .filter_map(|w| c.find_subcommand(w).cloned())
            })
            .collect();
        if found.is_empty() {
            break;
        }
        commands = found;
        words.next();
    }
    let globals = crate::Cli::command();
    let mut unknown = Vec::new();
    for word in words {
        let word = word
            .trim_start_matches('[')
            .trim_end_matches([']', '.', ',']);
        let flag = word.split('=').next().unwrap_or(word);
        let known = |c: &clap::Command| {
            c.get_arguments().chain(globals.get_arguments()).any(|a| {
                let long = a.get_long().map(|l| format!("--{l}"));
                let short = a.get_short().map(|s| format!("-{s}"));
                long.as_deref() == Some(flag) || short.as_deref() == Some(flag)
            }) || flag == "--help"
                || flag == "-h"
        };
        let is_flag = flag.starts_with('-')
            && flag.len() > 1
            && !flag[1..].starts_with(|c: char| c.is_ascii_digit());
        if is_flag && !commands.iter().any(known) {
            unknown.push(flag.to_owned());
        }
    }
    if commands.len() == 1 && commands[0].get_name() == "crow" {
        return Err(format!("no subcommand of crow in `crow {line}`"));
    }
    Ok(unknown)
}

#[test]
fn every_crow_command_in_the_docs_names_real_subcommands_and_flags() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page reads");
        let name = page.file_name().map(|n| n.to_string_lossy().into_owned());
        for line in command_lines(&text) {
            checked += 1;
            match unknown_flags(&line) {
                Ok(unknown) if unknown.is_empty() => {}
                Ok(unknown) => {
                    problems.push(format!("{name:?}: `crow {line}`: unknown {unknown:?}"))
                }
                Err(e) => problems.push(format!("{name:?}: {e}")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "stale commands in the docs:\n{}",
        problems.join("\n")
    );
    // The docs hold dozens of crow commands; finding few means the extraction broke.
    assert!(
        checked > 50,
        "only {checked} crow command lines found in the docs"
    );
}

#[test]
fn a_stale_command_is_caught() {
    assert_eq!(
        unknown_flags("summary --org x --json").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        unknown_flags("summary --org x --colour").unwrap(),
        vec!["--colour"]
    );
    assert!(unknown_flags("sumary --org x").is_err());
    let lines = command_lines(
        "```sh\nexport T=$(crow token --org a)   # note\nCROW_X=1 target/debug/crow serve \\\n  --dev | crow config check F\ncrow summary [--json | --org O] | head\n```\n",
    );
    assert_eq!(
        lines,
        [
            "token --org a",
            "serve --dev",
            "config check F",
            "summary [--json --org O]"
        ]
    );
    assert_eq!(
        unknown_flags("products list|delete --org o").unwrap(),
        Vec::<String>::new()
    );
}
