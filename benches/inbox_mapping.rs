//! Benchmark: mapping a 50-thread inbox response (`list_conversations`) and a
//! 50-item thread page (`list`) with the response sections of the real
//! connectors/instagram.yaml, loaded through the spec loader; and loading
//! that spec (parse, validate and compile every action).

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use matrix_instagram::connector::mapping::ResponseMapping;
use matrix_instagram::connector::spec::Spec;
use serde_json::{json, Value};

const THREADS: usize = 50;
const ITEMS_PER_THREAD: usize = 10;
const THREAD_PAGE_ITEMS: usize = 50;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/instagram/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn spec_text() -> (String, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("connectors/instagram.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
    (path.display().to_string(), text)
}

/// The `response:` section of the single-request action `name`.
fn response_of<'s>(spec: &'s Spec, name: &str) -> &'s ResponseMapping {
    &spec.actions[name].steps[0].request.response
}

/// `count` items cycled from `pool`, each with a fresh, descending item id and timestamp.
fn items(pool: &[Value], count: usize, seed: u128) -> Vec<Value> {
    (0..count)
        .map(|index| {
            let mut item = pool[index % pool.len()].clone();
            let timestamp = 1_748_779_930_159_008u64 - index as u64 * 1_000_000;
            // Real item ids are the µs timestamp shifted left by 64 bits; the low
            // bits keep ids unique across threads.
            let item_id = (u128::from(timestamp) << 64) | (seed & u128::from(u64::MAX));
            item["item_id"] = json!(item_id.to_string());
            item["timestamp"] = json!(timestamp);
            item
        })
        .collect()
}

/// The inbox fixture grown to 50 threads of 10 items each, every thread with a fresh id.
fn inbox_with_50_threads() -> Value {
    let mut inbox = fixture("inbox.json");
    let templates = inbox["inbox"]["threads"]
        .as_array()
        .expect("threads")
        .clone();
    let mut pool: Vec<Value> = templates
        .iter()
        .flat_map(|thread| thread["items"].as_array().cloned().unwrap_or_default())
        .collect();
    pool.extend(
        fixture("thread_group_page2_older.json")["thread"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    let threads: Vec<Value> = (0..THREADS)
        .map(|index| {
            let mut thread = templates[index % templates.len()].clone();
            let id = 340_282_366_841_710_300_000_000_000_000_000_000_000u128 + index as u128;
            thread["thread_id"] = json!(id.to_string());
            thread["items"] = Value::Array(items(&pool, ITEMS_PER_THREAD, id));
            thread
        })
        .collect();
    inbox["inbox"]["threads"] = Value::Array(threads);
    inbox
}

/// A thread page of 50 items drawn from both recorded group-thread pages.
fn thread_with_50_items() -> Value {
    let mut page = fixture("thread_group_page1.json");
    let mut pool = page["thread"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    pool.extend(
        fixture("thread_group_page2_older.json")["thread"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    page["thread"]["items"] = Value::Array(items(&pool, THREAD_PAGE_ITEMS, 1));
    page
}

fn bench(c: &mut Criterion) {
    let (source, text) = spec_text();
    let spec = Spec::parse(&source, &text).unwrap_or_else(|err| panic!("{err}"));
    let vars = json!({
        "params": {"conversation_id": "340282366841710301244276120666290001122", "limit": 20},
        "api": {"base_url": "https://i.instagram.com/api/v1", "web_base_url": "https://www.instagram.com"},
    });

    let inbox = inbox_with_50_threads();
    let list_conversations = response_of(&spec, "list_conversations");
    let mapped = list_conversations
        .apply(&inbox, &vars)
        .expect("the inbox maps");
    assert_eq!(mapped.as_array().map(Vec::len), Some(THREADS));
    c.bench_function("list_conversations: map a 50-thread inbox", |b| {
        b.iter(|| list_conversations.apply(black_box(&inbox), black_box(&vars)))
    });

    let thread = thread_with_50_items();
    let list = response_of(&spec, "list");
    let mapped = list.apply(&thread, &vars).expect("the thread maps");
    assert_eq!(mapped.as_array().map(Vec::len), Some(THREAD_PAGE_ITEMS));
    c.bench_function("list: map a 50-item thread page", |b| {
        b.iter(|| list.apply(black_box(&thread), black_box(&vars)))
    });

    c.bench_function("load connectors/instagram.yaml", |b| {
        b.iter(|| Spec::parse(black_box(&source), black_box(&text)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
