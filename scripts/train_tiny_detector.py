"""Train the tiny person detector for the synthetic scene videos and export it in the YOLOv8 ONNX layout.

    python scripts/train_tiny_detector.py [--out tests/sdk/ingest/data/tiny_person_yolov8.onnx] [--steps 1200]

A test fixture, not a real detector: a 6-layer conv net (stride 16, about 60k parameters) trained for a few CPU
minutes on frames of ``training.synth.video.render_scene_video`` clips (seeds 100-107) against their ground-truth
boxes. Its ONNX graph takes ``images`` [1,3,240,320] RGB in [0,1] and returns ``output0`` [1, 5, 300]: per cell of
the 15x20 grid ``cx, cy, w, h`` in input pixels and the person score (one class), which is the YOLOv8 layout
``[1, 4+C, N]`` that :func:`tvreid_sdk.ingest.detect.decode_yolo` reads. So the real decode path (letterbox, ONNX
Runtime, layout detection, threshold, NMS, mapping back to frame pixels) runs on real frames in the tests.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tvreid_sdk.vision.video import VideoReader
from training.synth.video import render_scene_video

H, W, STRIDE = 240, 320, 16
GH, GW = H // STRIDE, W // STRIDE


class TinyDetector(nn.Module):
    def __init__(self):
        super().__init__()

        def block(cin, cout, stride, dilation=1):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.body = nn.Sequential(block(3, 16, 2), block(16, 24, 2), block(24, 32, 2), block(32, 48, 2),
                                  block(48, 48, 1, 2), block(48, 48, 1, 4))
        self.head = nn.Conv2d(48, 5, 1)  # tx, ty, tw, th, objectness logit per cell
        ys, xs = torch.meshgrid(torch.arange(GH), torch.arange(GW), indexing="ij")
        self.register_buffer("cells", torch.stack([xs, ys]).float().reshape(1, 2, -1))  # [1,2,N]

    def raw(self, x):  # x [B,3,H,W] -> [B,5,GH*GW]
        return self.head(self.body(x)).flatten(2)

    def forward(self, x):  # ONNX graph: decoded YOLOv8 layout [B, 5, N]
        r = self.raw(x)
        cxy = (self.cells + torch.sigmoid(r[:, :2])) * STRIDE
        wh = torch.exp(r[:, 2:4].clamp(-4, 4)) * 64.0
        return torch.cat([cxy, wh, torch.sigmoid(r[:, 4:5])], dim=1)


def dataset(root: Path, seeds) -> tuple[np.ndarray, list]:
    images, targets = [], []
    for seed in seeds:
        scene = render_scene_video(root / str(seed), people=3, seconds=6, seed=seed, size=(H, W))
        by_frame: dict[int, list] = {}
        for b in scene.boxes:
            x0, y0, x1, y1 = max(0, b.x), max(0, b.y), min(W, b.x + b.w), min(H, b.y + b.h)
            if x1 - x0 >= 16 and y1 - y0 >= 32:
                by_frame.setdefault(b.frame, []).append((x0, y0, x1, y1))
        with VideoReader(scene.video) as reader:
            for f in reader.frames():
                images.append(f.image)
                targets.append(by_frame.get(f.index + 1, []))
    return np.stack(images), targets


def encode_targets(boxes) -> tuple[np.ndarray, np.ndarray]:
    obj, reg = np.zeros(GH * GW, np.float32), np.zeros((4, GH * GW), np.float32)
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        gx, gy = min(GW - 1, int(cx // STRIDE)), min(GH - 1, int(cy // STRIDE))
        cell = gy * GW + gx
        obj[cell] = 1.0
        reg[:, cell] = [cx / STRIDE - gx, cy / STRIDE - gy, np.log((x1 - x0) / 64.0), np.log((y1 - y0) / 64.0)]
    return obj, reg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/sdk/ingest/data/tiny_person_yolov8.onnx")
    ap.add_argument("--steps", type=int, default=1200)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        images, boxes = dataset(Path(tmp), range(100, 108))
    obj, reg = zip(*(encode_targets(b) for b in boxes))
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # [F,3,H,W]
    obj_all, reg_all = torch.from_numpy(np.stack(obj)), torch.from_numpy(np.stack(reg))  # [F,N], [F,4,N]
    model = TinyDetector()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.steps)
    rng = np.random.default_rng(0)
    for step in range(args.steps):
        idx = torch.from_numpy(rng.integers(0, len(x_all), 16))
        x = x_all[idx]
        if rng.random() < 0.5:  # horizontal flip: people walk both ways
            x = x.flip(3)
            o, r = obj_all[idx].reshape(-1, GH, GW).flip(2).reshape(-1, GH * GW), reg_all[idx].reshape(-1, 4, GH, GW)
            r = r.flip(3).clone()
            r[:, 0] = torch.where(r[:, 0] != 0, 1 - r[:, 0], r[:, 0])
            r = r.reshape(-1, 4, GH * GW)
        else:
            o, r = obj_all[idx], reg_all[idx]
        out = model.raw(x)  # [B,5,N]
        pos = o > 0
        loss = nn.functional.binary_cross_entropy_with_logits(out[:, 4], o, pos_weight=torch.tensor(20.0))
        if pos.any():
            pred = torch.cat([torch.sigmoid(out[:, :2]), out[:, 2:4]], 1).permute(0, 2, 1)[pos]  # [P,4]
            loss = loss + nn.functional.smooth_l1_loss(pred, r.permute(0, 2, 1)[pos]) * 5
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f}", flush=True)
    model.eval()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 3, H, W), str(out), input_names=["images"], output_names=["output0"],
                      opset_version=17, dynamo=False)
    print(f"wrote {out} ({out.stat().st_size} bytes, {sum(p.numel() for p in model.parameters())} parameters)")


if __name__ == "__main__":
    main()
