//! Any text as a build request's fields: git refs, repository paths, build-argument names,
//! pipeline annotations and entity refs. Nothing panics; whatever is accepted keeps the
//! promises its type makes (no option-like value, no path leaving the repository) and reads
//! back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_domain::EntityRef;
use nova_domain::build::{BuildArgName, GitRef, RepoPath};
use nova_domain::build_pipeline::BuildPipeline;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = GitRef::parse(s) {
        let shown = r.to_string();
        assert!(!shown.starts_with('-') && !shown.contains("..") && !shown.chars().any(char::is_control));
        assert_eq!(GitRef::parse(&shown).as_ref(), Ok(&r));
    }
    if let Ok(p) = RepoPath::parse(s) {
        let shown = p.as_str();
        assert!(!shown.starts_with('/') && !shown.chars().any(char::is_control));
        assert!(shown.split('/').all(|c| !c.is_empty() && c != ".." && !c.starts_with('-')), "{shown:?}");
        assert_eq!(RepoPath::parse(shown).as_ref(), Ok(&p), "normalising twice changes nothing");
        let parent = p.parent();
        assert!(shown == "." || parent.is_root() || shown.starts_with(&format!("{}/", parent.as_str())));
    }
    if let Ok(n) = BuildArgName::parse(s) {
        assert!(n.as_str().chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
    if let Ok(p) = BuildPipeline::parse(s) {
        assert_eq!(BuildPipeline::parse(&p.to_string()).as_ref(), Ok(&p));
    }
    if let Ok(r) = EntityRef::parse(s) {
        assert_eq!(EntityRef::parse(&r.to_string()).as_ref(), Ok(&r));
    }
});
