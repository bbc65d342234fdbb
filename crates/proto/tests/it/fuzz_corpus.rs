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
