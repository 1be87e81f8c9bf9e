"""`audit_config`: defaults < --quick < a YAML file < the options given, validated in one place."""

import pytest

from data_cleaning.clean import CleanSettings
from medxai.codec import encode
from medxai.errors import MedxaiError
from medxai.explain.user_model import ModelSource
from medxai.models.training import TrainConfig
from pipelines.audit import QUICK, audit_config
from pipelines.audit.cache import claim_folder


def write(tmp_path, text):
    path = tmp_path / "audit.yaml"
    path.write_text(text)
    return path


def test_the_sections_are_the_settings_records_of_the_parts():
    config = audit_config()
    assert isinstance(config.train, TrainConfig) and isinstance(config.clean, CleanSettings)
    assert (config.train.epochs, config.train.image_size, config.train.lr) == (20, 128, 2e-3)
    assert config.clean.detector == "fused"  # "auto" made concrete
    assert config.model is None and config.retrain  # the audit trains, and retrains
    assert config.data.dataset == "phantom" and config.phantom.n_per_class == 200


def test_a_file_overrides_quick_and_options_override_the_file(tmp_path):
    path = write(
        tmp_path,
        "quick: true\ntrain:\n  epochs: 3\n  lr: 1e-3\nexplain:\n  methods: [gradcam]\n"
        "clean:\n  text_threshold: 1\nseed: 4\n",
    )
    config = audit_config(file=path, epochs=5)
    assert config.quick and config.train.image_size == QUICK["image_size"]  # from --quick
    assert config.train.lr == 1e-3  # YAML reads 1e-3 as text; the float field takes it
    assert config.clean.text_threshold == 1.0
    assert config.explain.methods == ("gradcam",)
    assert config.train.epochs == 5  # the option wins over the file
    assert config.seed == config.train.seed == config.phantom.seed == 4  # one seed


def test_file_problems_are_one_line_errors_naming_the_file(tmp_path):
    with pytest.raises(MedxaiError, match="audit.yaml: unknown setting 'train.epoch'"):
        audit_config(file=write(tmp_path, "train:\n  epoch: 3\n"))
    with pytest.raises(MedxaiError, match="audit.yaml.*epochs"):
        audit_config(file=write(tmp_path, "train:\n  epochs: many\n"))
    with pytest.raises(MedxaiError, match="audit.yaml: not valid YAML"):
        audit_config(file=write(tmp_path, "train: [\n"))
    with pytest.raises(MedxaiError, match="a mapping of sections"):
        audit_config(file=write(tmp_path, "- 1\n"))
    with pytest.raises(MedxaiError, match="cannot read the config file"):
        audit_config(file=tmp_path / "missing.yaml")
    with pytest.raises(MedxaiError, match="unknown audit settings"):
        audit_config(epoch=3)


def test_a_users_model_is_not_retrained_unless_asked_and_a_file_kind_never(tmp_path):
    onnx = ModelSource("onnx", str(tmp_path / "m.onnx"))
    assert not audit_config(source=onnx).retrain
    with pytest.raises(MedxaiError, match="--retrain: an ONNX file holds no architecture"):
        audit_config(source=onnx, retrain=True)
    weights = tmp_path / "w.pt"
    path = write(
        tmp_path, f"model:\n  kind: import\n  location: pkg.mod:build\n  weights: {weights}\n"
    )
    config = audit_config(file=path)
    assert config.model == ModelSource("import", "pkg.mod:build", weights) and not config.retrain


def test_a_root_without_a_layout_is_told_from_the_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train.txt").write_text("")
    config = audit_config(root=str(tmp_path))
    assert config.data.dataset == "covidx"
    with pytest.raises(MedxaiError, match="--root is for a dataset on disk"):
        audit_config(dataset="phantom", root=str(tmp_path))


def test_resuming_with_other_settings_names_them(tmp_path):
    claim_folder(tmp_path, encode(audit_config()))
    claim_folder(tmp_path, encode(audit_config()))  # the same settings resume
    with pytest.raises(MedxaiError, match=r"other settings \(explain.n_explain, train.epochs\)"):
        claim_folder(tmp_path, encode(audit_config(epochs=3, n_explain=1)))


def test_a_missing_regions_file_stops_before_anything_runs(tmp_path):
    with pytest.raises(MedxaiError, match=r"nope.csv: regions file not found \(--regions\)"):
        audit_config(regions=str(tmp_path / "nope.csv"))
    (tmp_path / "r.csv").write_text("image,kind,x0,y0,x1,y1\n")
    assert audit_config(regions=str(tmp_path / "r.csv")).data.regions == str(tmp_path / "r.csv")


def test_ties_from_is_a_data_setting_and_an_older_config_without_it_still_reads(tmp_path):
    import json

    from medxai.codec import decode
    from pipelines.audit.config import AuditConfig

    assert audit_config().data.ties_from is None
    assert audit_config(file=write(tmp_path, "data:\n  ties_from: val\n")).data.ties_from == "val"
    assert audit_config(ties_from="test").data.ties_from == "test"
    older = encode(audit_config())
    del older["data"]["ties_from"]
    assert decode(AuditConfig, older) == audit_config()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "audit_config.json").write_text(json.dumps(older))
    claim_folder(tmp_path / "run", encode(audit_config()))  # an older run resumes
    source = ModelSource("import", "pkg.mod:build", tmp_path / "w.pt")
    assert audit_config().trains and not audit_config(source=source).trains
    assert audit_config(source=source, retrain=True).trains
