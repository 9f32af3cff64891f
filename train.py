"""Train an autospec engine and export it: ``python train.py [overrides]``.

The last line printed is the path of the exported artifact (``<name>.json`` beside its
``.safetensors``). Examples: ``python train.py experiment=linsys_d10``,
``python train.py -m engine.width=32,64``, ``python train.py ckpt_path=<run>/checkpoints/last.ckpt``.
"""

import hydra
from omegaconf import DictConfig

from autospec.training.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    result = train(cfg)
    print(result["artifact"])


if __name__ == "__main__":
    main()
