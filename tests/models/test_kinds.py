"""The model kinds table: one record per kind, and the layering of the user-model loading."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from medxai.errors import MedxaiError
from medxai.models.kinds import MODEL_KINDS, USER_KINDS, ModelKind, model_kind

MODELS = Path(__file__).resolve().parents[2] / "medxai" / "models"


def test_the_table_names_each_kind_once_in_the_audits_order():
    assert list(MODEL_KINDS) == ["train", "checkpoint", "import", "torchscript", "onnx"]
    assert USER_KINDS == ("checkpoint", "import", "torchscript", "onnx")
    assert all(isinstance(k, ModelKind) and k.name == name for name, k in MODEL_KINDS.items())


OPTIONS = {"checkpoint": "--checkpoint", "import": "--model-import",
           "torchscript": "--torchscript", "onnx": "--onnx"}  # fmt: skip
LABELS = {"checkpoint": "medxai checkpoint", "import": "imported model",
          "torchscript": "TorchScript model", "onnx": "ONNX model"}  # fmt: skip


@pytest.mark.parametrize("name", USER_KINDS)
def test_every_user_kind_has_a_loader_an_option_and_a_label(name):
    kind = model_kind(name)
    assert callable(kind.load) and kind.user
    assert (kind.option, kind.label) == (OPTIONS[name], LABELS[name])


def test_the_audits_own_model_is_a_kind_without_an_option():
    train = model_kind("train", audit=True)
    assert train.option is None and not train.user and callable(train.load)
    assert train.eager and train.gradients and train.can_retrain and train.own_spec
    assert train.load is MODEL_KINDS["checkpoint"].load, "the audit saves a medxai checkpoint"


def test_unknown_kinds_are_errors_listing_the_kinds_taken():
    with pytest.raises(MedxaiError) as info:
        model_kind("keras")
    assert str(info.value) == (
        "unknown model kind 'keras'; use checkpoint, import, torchscript, onnx"
    )
    with pytest.raises(MedxaiError, match="unknown model kind 'train'; use checkpoint, import"):
        model_kind("train")  # no user gives the audit's own model
    with pytest.raises(MedxaiError) as info:
        model_kind("x", audit=True)
    assert str(info.value) == (
        "unknown model kind 'x'; use train, checkpoint, import, torchscript, onnx"
    )


def test_files_without_an_architecture_cannot_be_retrained():
    assert model_kind("torchscript").no_retrain == (
        "--retrain: a TorchScript file holds no architecture to rebuild; give it with "
        "--model-import package.module:factory (or --checkpoint)"
    )
    assert model_kind("onnx").no_retrain == (
        "--retrain: an ONNX file holds no architecture to rebuild; give it with "
        "--model-import package.module:factory (or --checkpoint)"
    )
    for name in ("torchscript", "onnx"):
        assert not model_kind(name).can_retrain and not model_kind(name).eager
    for kind in MODEL_KINDS.values():
        assert kind.can_retrain == (kind.no_retrain == ""), kind.name


def test_the_sanity_check_runs_exactly_on_eager_kinds():
    assert model_kind("torchscript").no_sanity == (
        "a TorchScript model's layers cannot be re-initialised one by one"
    )
    assert model_kind("onnx").no_sanity == (
        "an ONNX model's weights cannot be re-initialised from medxai"
    )
    for kind in MODEL_KINDS.values():
        assert kind.eager == (kind.no_sanity == ""), kind.name
    assert [k for k in USER_KINDS if model_kind(k).eager] == ["checkpoint", "import"]


def test_the_notes_for_methods_a_kind_cannot_run():
    assert model_kind("onnx").no_gradients == "an ONNX model runs forward only"
    assert not model_kind("onnx").gradients
    assert model_kind("torchscript").gradients, "probed: a traced model gives gradients"
    assert model_kind("import").no_gradients == "the model gives no input gradients"
    assert model_kind("torchscript").no_target_layer == (
        "a TorchScript model runs no forward hooks on its layers"
    )
    assert model_kind("onnx").no_target_layer == "an ONNX model has no layers to hook"
    assert model_kind("checkpoint").no_target_layer == "none found (give --target-layer)"
    assert [k for k in USER_KINDS if model_kind(k).weights] == ["import"]
    assert [k for k in USER_KINDS if model_kind(k).own_spec] == ["checkpoint"]


def test_the_kinds_module_loads_without_torch():
    """The CLI reads the table at start-up: each loader imports torch when it runs."""
    code = "import sys, medxai.models.kinds; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_models_never_import_explain():
    for path in sorted(MODELS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any(n.startswith("medxai.explain") for n in names), path.name


def test_explain_keeps_the_loading_names():
    from medxai.explain import user_model as explain
    from medxai.models import user_model as models

    for name in ("ModelSource", "read_preprocessing_file", "OnnxClassifier", "fresh_model",
                 "architecture_name", "check_classes", "PreprocessingFile"):  # fmt: skip
        assert getattr(explain, name) is getattr(models, name), name
