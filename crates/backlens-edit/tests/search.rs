//! The minimum-step search: the returned step reaches the goal and one within the resolution
//! below it does not (tiny model, so the efficacy curve is cheap to check by brute force).

use backlens_edit::search::{efficacy, min_eta, min_setting, SearchOptions};
use backlens_edit::EtaKind;
use backlens_edit::{EditMethod, EditRequest, OneStepSgd};
use backlens_model::testing::{random_llama, TinyLlama};
use backlens_model::LanguageModel;

const SPEC: TinyLlama = TinyLlama { context: 12, ..TinyLlama::SMALL };

/// Requests for new targets that a very large shift at the last layer does reach (with random
/// embeddings some tokens can never win: another row may align better with theirs).
fn requests(model: &mut dyn LanguageModel) -> Vec<EditRequest> {
    [vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9]]
        .into_iter()
        .map(|p| {
            let logits = model.logits(&p).unwrap();
            let top =
                backlens_edit::metrics::argmax(&logits.get(p.len() - 1).unwrap().to_vec1::<f32>().unwrap()) as u32;
            (1..19)
                .map(|k| EditRequest::new(p.clone(), vec![(top + k) % 19]).unwrap())
                .find(|r| {
                    let huge = backlens_edit::ForwardPassShift::new(1, EtaKind::ScaleFree.eta(1e6));
                    efficacy(model, &huge, std::slice::from_ref(r)).unwrap() == 100.0
                })
                .expect("some token is reachable")
        })
        .collect()
}

#[test]
fn min_eta_brackets_the_efficacy_threshold() {
    let mut model = random_llama(SPEC, 4);
    let reqs = requests(&mut model);
    let opts = SearchOptions { kind: EtaKind::ScaleFree, start: 1.0, goal: 100.0, resolution: 1.1, max_doublings: 20 };
    let (eta, probes) = min_eta(&mut model, 1, &reqs, &opts).unwrap();
    let eta = eta.unwrap_or_else(|| panic!("no eta found: {probes:?}"));
    let fps = |e: f64| backlens_edit::ForwardPassShift::new(1, EtaKind::ScaleFree.eta(e));
    assert_eq!(efficacy(&mut model, &fps(eta), &reqs).unwrap(), 100.0);
    let below = probes.iter().filter(|&&(e, eff)| e < eta && eff < 100.0).map(|p| p.0).fold(0f64, f64::max);
    assert!(below > 0.0 && eta / below <= 1.1 + 1e-9, "no failing probe within the resolution below {eta}: {probes:?}");
    // Starting above the threshold finds the same bracket from the other side.
    let (eta2, _) = min_eta(&mut model, 1, &reqs, &SearchOptions { start: 1e4, ..opts }).unwrap();
    let eta2 = eta2.unwrap();
    assert_eq!(efficacy(&mut model, &fps(eta2), &reqs).unwrap(), 100.0);
    assert!(eta2 / eta < 2.2 && eta / eta2 < 2.2, "{eta} vs {eta2}");
}

#[test]
fn min_setting_per_request_for_sgd() {
    let mut model = random_llama(SPEC, 5);
    let reqs = requests(&mut model);
    let opts = SearchOptions { kind: EtaKind::Raw, start: 1.0, goal: 100.0, resolution: 1.2, max_doublings: 16 };
    let mut found = 0;
    for r in &reqs {
        let make = |lr: f64| -> Box<dyn EditMethod> { Box::new(OneStepSgd { layer: 1, lr }) };
        let (lr, _) = min_setting(&mut model, &make, std::slice::from_ref(r), &opts).unwrap();
        if let Some(lr) = lr {
            assert_eq!(efficacy(&mut model, make(lr).as_ref(), std::slice::from_ref(r)).unwrap(), 100.0);
            found += 1;
        }
    }
    assert!(found > 0, "one SGD step never made a target the argmax");
}
