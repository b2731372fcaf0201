//! Any bytes as a template: rendering and planning never panic, and a template that
//! renders uses no variable the sources lack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_policy::hydrate::{Hydrator, Origin, StaticValues};

fuzz_target!(|data: &[u8]| {
    let values = [("A", "value"), ("EMPTY", ""), ("B", "${A}")].map(|(k, v)| (k.to_owned(), v.to_owned()));
    let hydrator = Hydrator::new(vec![Box::new(StaticValues::new("fuzz", values))]);
    let rendered = hydrator.render("fuzz", &mut &data[..], &mut Vec::new());
    let plan = hydrator.plan("fuzz", &mut &data[..]);
    if let (Ok(()), Ok(plan)) = (rendered, plan) {
        assert!(plan.usages.iter().all(|usage| usage.origin != Origin::Missing));
    }
});
