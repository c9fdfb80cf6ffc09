//! The classifier over the config's customers: which customer owns a
//! source address (the dataplane's [`Classifier`], built from the
//! `[[customer]]` prefixes).
use synwall_config::Customer;
use synwall_dataplane::classify::{Classifier, ClassifierError, CustomerId};

/// The classifier over every customer's prefixes.
pub fn classifier(customers: &[Customer]) -> Result<Classifier, ClassifierError> {
    classifier_on(None, customers)
}

/// The classifier over `customers`' prefixes, its tables on NUMA `node`
/// (`None`: where the kernel places them).
pub fn classifier_on(
    node: Option<u32>,
    customers: &[Customer],
) -> Result<Classifier, ClassifierError> {
    Classifier::build_on(
        node,
        customers.len(),
        customers.iter().flat_map(|c| {
            c.prefixes
                .iter()
                .map(move |p| (p.addr, p.len, CustomerId::new(c.id)))
        }),
    )
}
