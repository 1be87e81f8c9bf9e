"""The shared audits: the second audits the first's retrained model on the same films."""


def test_the_second_audit_is_the_first_ones_retrained_model(tiny_audit, tiny_audit_of_cleaned):
    first, second = tiny_audit.result, tiny_audit_of_cleaned.result
    assert second.negative_control is None, "no retraining in the second"
    assert first.shortcut.evidence.n_images == second.shortcut.evidence.n_images
    assert second.config.model.location.endswith("cleaned_model/model.pt")
