//! The README's example outputs are what the commands print: each block marked
//! `<!-- readme-test: DIR -->` is a `console` block whose first line is `$ COMMAND`; the
//! command runs in DIR (from the repository root), and what it prints, stdout then
//! stderr, must be the rest of the block. `meridian` is this build's binary.

use std::process::Command;

use crate::common::repo;

/// (directory, command, expected output) of every marked block.
fn marked_blocks(readme: &str) -> Vec<(String, String, String)> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(dir) = line
            .strip_prefix("<!-- readme-test: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(lines.next(), Some("```console"), "after {line}");
        let command = lines
            .next()
            .and_then(|l| l.strip_prefix("$ "))
            .unwrap_or_else(|| panic!("{line}: the block must start with `$ COMMAND`"))
            .to_string();
        let mut expected = String::new();
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            expected.push_str(l);
            expected.push('\n');
        }
        blocks.push((dir.to_string(), command, expected));
    }
    blocks
}

#[test]
fn every_marked_readme_block_prints_what_it_shows() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = marked_blocks(&readme);
    assert!(blocks.len() >= 3, "marked blocks: {}", blocks.len());
    let mut wrong = Vec::new();
    for (dir, command, expected) in &blocks {
        let words: Vec<&str> = command.split_whitespace().collect();
        let program = match words[0] {
            "meridian" => env!("CARGO_BIN_EXE_meridian"),
            other => other,
        };
        let out = Command::new(program)
            .args(&words[1..])
            .current_dir(repo().join(dir))
            .env_remove("MERIDIAN_CONFIG")
            .output()
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Trailing blank lines are not shown in a block.
        if printed.trim_end() != expected.trim_end() {
            wrong.push(format!(
                "in {dir}, `{command}` printed\n{printed}\nbut the README shows\n{expected}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_block_that_differs_is_caught() {
    let readme =
        "<!-- readme-test: tests/readme/check-stops -->\n```console\n$ meridian check\nok\n```\n";
    let blocks = marked_blocks(readme);
    assert_eq!(
        blocks,
        [(
            "tests/readme/check-stops".to_string(),
            "meridian check".to_string(),
            "ok\n".to_string()
        )]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("check")
        .current_dir(repo().join(&blocks[0].0))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stderr), blocks[0].2);
}
