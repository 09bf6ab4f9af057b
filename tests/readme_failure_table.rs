//! The README's failure table is the core's: `vllm_client_core::policy::failure::markdown()`
//! renders the one table every part of the client reads, and this test keeps the README's copy
//! equal to it. After changing the table, `UPDATE_README=1 cargo test --test
//! readme_failure_table` rewrites the README's copy.

const START: &str = "<!-- failure-table: generated from vllm_client_core::policy::failure -->\n";
const END: &str = "<!-- /failure-table -->";

#[test]
fn the_readme_shows_the_core_failure_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("the README");
    let table = vllm_client::core::policy::failure::markdown();
    let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
        panic!("the README has no failure table between its markers");
    };
    let shown = &readme[a + START.len()..b];
    if shown != table && std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{START}{table}{}", &readme[..a], &readme[b..]);
        std::fs::write(path, updated).expect("README written");
        return;
    }
    assert_eq!(
        shown, table,
        "the README's failure table differs from the core's"
    );
}
