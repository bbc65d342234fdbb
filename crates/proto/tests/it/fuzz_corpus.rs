//! Replays the saved fuzz corpora (`fuzz/corpus/`) through the fuzz targets'
//! bodies, so every input the fuzzer kept is checked on every test run.

#[path = "../../../../fuzz/targets.rs"]
mod targets;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = crate::repo_root().join("fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0, "no corpus in {dir:?}");
}

#[test]
fn push_corpus_replays_without_panic() {
    replay("push", targets::push);
}

#[test]
fn decrypt_corpus_replays_without_panic() {
    replay("decrypt", targets::decrypt);
}

/// `Push::parse` reads the tree it parsed; `Push::from_element` a borrowed
/// one: the same push either way, or the same error, for every push the
/// fuzzer kept.
#[test]
fn parse_and_from_element_read_every_corpus_push_alike() {
    let dir = crate::repo_root().join("fuzz/corpus/push");
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let parsed = wxgate_proto::Push::parse(text);
        let from_tree = wxgate_proto::xml::parse(text)
            .map_err(wxgate_proto::MessageError::from)
            .and_then(|root| wxgate_proto::Push::from_element(&root));
        assert_eq!(parsed, from_tree, "{text:?}");
        read += usize::from(parsed.is_ok());
    }
    assert!(read > 0, "no corpus push reads as a push");
}
