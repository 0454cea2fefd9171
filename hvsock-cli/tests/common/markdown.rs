//! What docs.rs reads out of Markdown: console blocks, links, and output with wildcards.

/// One command of a console block and the output the page shows for it.
pub struct Example {
    /// The page's line of the command.
    pub line: usize,
    pub command: String,
    pub output: Vec<String>,
}

/// A console block: its commands, and the directory it runs in (`<!-- in DIR -->`).
pub struct Block {
    pub dir: Option<String>,
    pub commands: Vec<Example>,
}

/// Every ```console block of a page. A command goes on on the next line while it ends in `\`
/// or a quoted string is still open, as in a shell.
pub fn console_blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut dir = None;
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if let Some(d) = line.trim().strip_prefix("<!-- in ").and_then(|r| r.strip_suffix(" -->")) {
            dir = Some(d.to_string());
            continue;
        }
        let fence = line.trim_start();
        if !fence.starts_with("```") {
            if !line.trim().is_empty() {
                dir = None;
            }
            continue;
        }
        let console = fence.trim_start_matches('`').trim() == "console";
        let mut commands: Vec<Example> = Vec::new();
        let mut continued = false;
        let mut closed = false;
        for (j, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            if !console {
                continue;
            }
            if continued {
                let last = commands.last_mut().expect("a command goes on");
                last.command.push('\n');
                last.command.push_str(line);
                continued = goes_on(&last.command);
            } else if let Some(cmd) = line.strip_prefix("$ ") {
                commands.push(Example { line: j + 1, command: cmd.to_string(), output: Vec::new() });
                continued = goes_on(cmd);
            } else {
                match commands.last_mut() {
                    Some(last) => last.output.push(line.to_string()),
                    None => {
                        return Err(format!("line {}: a console block must start with a `$ ` command", j + 1))
                    }
                }
            }
        }
        if !closed {
            return Err(format!("line {}: a block that is never closed", i + 1));
        }
        if console {
            blocks.push(Block { dir: dir.take(), commands });
        }
        dir = None;
    }
    Ok(blocks)
}

/// Whether a shell command is unfinished: a quote still open, or a last `\`.
fn goes_on(cmd: &str) -> bool {
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in cmd.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
    }
    single || double || cmd.ends_with('\\')
}

/// Every `[text](target)` link of a page, with its line.
pub fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let Some(end) = tail.find(')') else { break };
            out.push((i + 1, tail[..end].to_string()));
            rest = &tail[end..];
        }
    }
    out
}

/// Whether `got` is what `want` shows: `...` alone on a line stands for any number of lines,
/// `[..]` for any text within a line.
pub fn matches(want: &[String], got: &[&str]) -> bool {
    match want.split_first() {
        None => got.is_empty(),
        Some((first, rest)) if first == "..." => (0..=got.len()).any(|skip| matches(rest, &got[skip..])),
        Some((first, rest)) => {
            got.split_first().is_some_and(|(line, more)| line_matches(first, line) && matches(rest, more))
        }
    }
}

fn line_matches(want: &str, got: &str) -> bool {
    let mut parts = want.split("[..]");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = got.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (k, part) in parts.iter().enumerate() {
        if k == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_with_wildcards() {
        let w = |s: &[&str]| s.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        for (want, got, ok) in [
            (w(&["a", "b"]), vec!["a", "b"], true),
            (w(&["a", "b"]), vec!["a", "c"], false),
            (w(&["a"]), vec!["a", "b"], false),
            (w(&["a", "..."]), vec!["a", "b", "c"], true),
            (w(&["...", "c"]), vec!["a", "b", "c"], true),
            (w(&["...", "c"]), vec!["a", "b"], false),
            (w(&["a", "...", "c", "..."]), vec!["a", "c"], true),
            (w(&["took [..] s"]), vec!["took 0.5 s"], true),
            (w(&["took [..] s"]), vec!["took 0.5 ms"], false),
            (w(&["[..]:[..]"]), vec!["vsock:3"], true),
            (w(&["x[..]"]), vec!["y"], false),
            (w(&[]), vec![], true),
        ] {
            assert_eq!(matches(&want, &got), ok, "{want:?} against {got:?}");
        }
    }

    #[test]
    fn blocks_commands_and_directories() {
        let page = "text\n<!-- in docs/x -->\n```console\n$ a \\\n  b\none\n...\n$ c\n```\n```sh\n$ not run\n```\n```console\n$ d\n```\n";
        let blocks = console_blocks(page).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].dir.as_deref(), Some("docs/x"));
        assert_eq!(blocks[0].commands[0].command, "a \\\n  b");
        assert_eq!(blocks[0].commands[0].output, ["one", "..."]);
        assert_eq!(blocks[0].commands[0].line, 4);
        assert_eq!(blocks[0].commands[1].command, "c");
        assert!(blocks[1].dir.is_none());
        assert!(console_blocks("```console\nno command\n```\n").is_err());
        let quoted = console_blocks("```console\n$ sh -c 'a\n  b' \"c\n\"\nout\n```\n").unwrap();
        assert_eq!(quoted[0].commands[0].command, "sh -c 'a\n  b' \"c\n\"");
        assert_eq!(quoted[0].commands[0].output, ["out"]);
        let escaped = console_blocks("```console\n$ echo \\' it's\n$ next'\n```\n").unwrap();
        assert_eq!(escaped[0].commands.len(), 1, "an escaped quote opens nothing; the second does");
        assert!(console_blocks("```console\n$ a\n").is_err());
    }

    #[test]
    fn links_outside_code() {
        let page = "see [a](a.md) and [b](b.md#x)\n```\n[c](c.md)\n```\n";
        assert_eq!(links(page), [(1, "a.md".to_string()), (1, "b.md#x".to_string())]);
    }
}
