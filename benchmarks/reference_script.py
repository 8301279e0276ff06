"""Run the reference's own zero_shot_classification.py (Ming-er/MGA-CLAP) from a checkout, with run-time
patches only (benchmarks/scripts.py calls this as a subprocess; the patches are benchmarks/reference_code.py's).

    python -m benchmarks.reference_script --checkout /tmp/mgaclap_ref --data-root DIR/ --ckpt CKPT.pt \
        --run-dir DIR --tokenizer-dir MINILM_FOLDER

Nothing of the checkout is copied or edited. What this process does before `runpy` runs the script's file:
- its settings/inference_cls.yaml is read, device set to --device (cpu by default), eval.data_root_dir and
  eval.ckpt filled in (the two placeholders it ships with), and written to
  <run-dir>/settings/inference_cls.yaml; the process works in <run-dir>, since the script opens that relative
  path;
- `models` and `tools` are the checkout's packages (benchmarks.reference_code), the checkout is first on
  sys.path (its data_handling);
- the imports its model never uses and that are not installed get stand-ins (reference_code);
- its text tower's MODELS entry builds BertModel from bert-base-uncased's config and reads BertTokenizer
  from --tokenizer-dir (reference_code's factories): no hub, the same classes and sizes;
- Sparsemax.forward's default device='cuda' becomes the input's device (the same operations).
The script's torchaudio.load, torchaudio.transforms.Resample, pandas, sklearn and ruamel.yaml are the real
packages: they must be importable (benchmarks/scripts.py --reference-site puts a folder holding them on
PYTHONPATH). The script goes on to UrbanSound8K and VGGSound after ESC-50; their csv files are absent here,
and the FileNotFoundError that ends the run there is caught (ESC-50's result is printed before).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import sys
from pathlib import Path

import yaml


def patched_sparsemax(ase_model: object) -> None:
    sparsemax = ase_model.Sparsemax
    forward = sparsemax.forward

    def forward_on_input_device(self, input, device=None):  # noqa: A002 (the reference's argument name)
        return forward(self, input, device=input.device if device is None else device)

    sparsemax.forward = forward_on_input_device


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", required=True)
    parser.add_argument("--data-root", required=True, help="the parent folder of ESC-50-master/")
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--tokenizer-dir", required=True, help="a folder with bert-base-uncased's vocabulary")
    parser.add_argument("--device", default="cpu", help="the YAML's device: cpu (default) or cuda")
    args = parser.parse_args(argv)

    from transformers import BertConfig

    from benchmarks.reference_code import (
        PAPER_TEXT_TOWER,
        _ConfigBuiltModel,
        _LocalTokenizer,
        _reference_packages,
        _stand_ins_for_unused_imports,
        check_checkout,
    )

    checkout = check_checkout(args.checkout)
    run_dir = Path(args.run_dir).resolve()
    config = yaml.safe_load((checkout / "settings" / "inference_cls.yaml").read_text())
    config["device"] = args.device
    config["eval"]["data_root_dir"] = str(Path(args.data_root).resolve()) + os.sep
    config["eval"]["ckpt"] = str(Path(args.ckpt).resolve())
    (run_dir / "settings").mkdir(parents=True, exist_ok=True)
    (run_dir / "settings" / "inference_cls.yaml").write_text(yaml.safe_dump(config))

    for name in [name for name in sys.modules if name.split(".")[0] == "data_handling"]:
        del sys.modules[name]
    # The checkout's data_handling/ has no __init__.py: our regular package of that name would win over it on the
    # path, so this repository leaves sys.path (everything of ours this process needs is imported by now).
    ours = Path(__file__).resolve().parent.parent
    sys.path[:] = [str(checkout)] + [entry for entry in sys.path if entry and Path(entry).resolve() != ours]
    os.chdir(run_dir)
    with _reference_packages(checkout), _stand_ins_for_unused_imports():
        import models.ase_model as ase_model
        import models.text_encoder as text_encoder

        patched_sparsemax(ase_model)
        entry = text_encoder.MODELS[PAPER_TEXT_TOWER]
        text_config = BertConfig()
        text_encoder.MODELS[PAPER_TEXT_TOWER] = (_ConfigBuiltModel(entry[0], text_config),
                                                 _LocalTokenizer(entry[1], Path(args.tokenizer_dir)),
                                                 text_config.hidden_size)
        with contextlib.suppress(FileNotFoundError):  # UrbanSound8K / VGGSound, after ESC-50's result
            runpy.run_path(str(checkout / "zero_shot_classification.py"), run_name="__main__")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
