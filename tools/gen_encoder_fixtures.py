#!/usr/bin/env python3
"""Regenerate tests/data/enc-*/: tiny random CLIP models in shapes the golden set does not
cover (exact gelu, both eos_token_id conventions, non-square head counts, other image and
patch sizes, other LayerNorm eps), with their inputs and the outputs of an independent PyTorch
implementation of Hugging Face's CLIPModel. tests/unit/test_encoder_fixtures.c compares
medvlm's forward pass with them.

Needs PyTorch + numpy and the project's reference scripts (clip_torch.py, st_io.py):

    /usr/bin/python3 tools/gen_encoder_fixtures.py [--bench DIR]   # DIR default ../shared/bench
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

FIXTURES = {
    # gelu, legacy pooling (eos_token_id == 2: argmax of the ids), 3 vision heads of 4
    "enc-a": dict(
        projection_dim=8, logit_scale=2.0, seed=11,
        text=dict(vocab_size=48, hidden_size=12, intermediate_size=20, num_hidden_layers=2,
                  num_attention_heads=2, max_position_embeddings=12, hidden_act="gelu",
                  layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1),
        vision=dict(hidden_size=12, intermediate_size=20, num_hidden_layers=2,
                    num_attention_heads=3, num_channels=3, image_size=15, patch_size=5,
                    hidden_act="gelu", layer_norm_eps=1e-5),
        prompts=[[45, 3, 9, 47, 1, 1], [45, 20, 47], [45, 5, 6, 7, 8, 9, 10, 47], [45, 47]],
        pad=1),
    # quick_gelu, pooling at the first eos_token_id (40), padding with that id, eps 1e-6
    "enc-b": dict(
        projection_dim=12, logit_scale=3.1, seed=12,
        text=dict(vocab_size=50, hidden_size=9, intermediate_size=16, num_hidden_layers=1,
                  num_attention_heads=3, max_position_embeddings=10, hidden_act="quick_gelu",
                  layer_norm_eps=1e-6, bos_token_id=39, eos_token_id=40, pad_token_id=40),
        vision=dict(hidden_size=8, intermediate_size=12, num_hidden_layers=2,
                    num_attention_heads=2, num_channels=3, image_size=12, patch_size=4,
                    hidden_act="quick_gelu", layer_norm_eps=1e-6),
        # ids above the EOS id (45, 49): argmax pooling would pick them, the first-EOS rule not
        prompts=[[39, 3, 40], [39, 12, 45, 14, 15, 16, 17, 18, 40], [39, 49, 2, 40]],
        pad=40),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bench", default=os.path.join(here, "..", "..", "shared", "bench"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data"))
    a = ap.parse_args()
    sys.path.insert(0, a.bench)
    import clip_torch
    import st_io

    torch.set_num_threads(1)
    for name, f in FIXTURES.items():
        torch.manual_seed(f["seed"])
        cfg = {"projection_dim": f["projection_dim"], "text_config": f["text"],
               "vision_config": f["vision"], "logit_scale_init_value": f["logit_scale"]}
        m = clip_torch.CLIP(cfg).eval()
        with torch.no_grad():  # non-trivial LayerNorms and biases
            for n, p in m.named_parameters():
                if n == "logit_scale":
                    continue
                p.copy_(torch.randn_like(p) * (0.1 if "norm" in n else 0.3) + (1.0 if "norm" in n and n.endswith("weight") else 0.0))
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        full = {"architectures": ["CLIPModel"], "model_type": "clip", **cfg}
        with open(os.path.join(d, "config.json"), "w") as fh:
            json.dump(full, fh, indent=1)
        st_io.save_file({k: v for k, v in m.state_dict().items()}, os.path.join(d, "model.safetensors"))

        v = f["vision"]
        px = torch.randn(3, 3, v["image_size"], v["image_size"])
        # some padding beyond the longest prompt
        T = min(max(len(p) for p in f["prompts"]) + 2, f["text"]["max_position_embeddings"])
        ids = torch.tensor([p + [f["pad"]] * (T - len(p)) for p in f["prompts"]], dtype=torch.int64)
        mask = torch.tensor([[1] * len(p) + [0] * (T - len(p)) for p in f["prompts"]], dtype=torch.int64)
        with torch.no_grad():
            vo, ie_u, ie = m.image_features(px)
            to, te_u, te = m.text_features(ids, mask)
            lpt = te @ ie.t() * m.logit_scale.exp()
            B = min(len(ie), len(te))
            lb = lpt[:B, :B]
            tgt = torch.arange(B)
            loss = (torch.nn.functional.cross_entropy(lb, tgt) + torch.nn.functional.cross_entropy(lb.t(), tgt)) / 2
        out = {
            "pixels": px, "input_ids": ids, "attention_mask": mask,
            "vision.hidden_states": torch.stack(vo["hidden_states"]),
            "vision.last_hidden_state": vo["last_hidden_state"], "vision.pooler_output": vo["pooler_output"],
            "vision.embeds_unnorm": ie_u, "vision.embeds": ie,
            "text.hidden_states": torch.stack(to["hidden_states"]),
            "text.last_hidden_state": to["last_hidden_state"], "text.pooler_output": to["pooler_output"],
            "text.embeds_unnorm": te_u, "text.embeds": te,
            "logits_per_image": lpt.t().contiguous(), "loss": loss.reshape(1),
        }
        st_io.save_file(out, os.path.join(d, "expected.safetensors"))
        print(name, "written:", sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d)), "bytes")


if __name__ == "__main__":
    main()
