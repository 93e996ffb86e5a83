"""Reference numbers for hark-train's tests (run: python3 make_references.py > references.json).

- classification_report: scikit-learn (zero_division=0) on labels from a fixed formula.
- OneCycleLR / StepLR / CosineAnnealingLR: torch could not be installed on the
  machine that made these (only PyPI's CUDA wheels exist), so the learning
  rates come from a line-for-line transcription of torch 2.11's
  torch/optim/lr_scheduler.py (OneCycleLR.get_lr, _annealing_cos,
  _annealing_linear, StepLR and CosineAnnealingLR's recursive get_lr),
  stepping the scheduler exactly as a training loop does.
"""
import json
import math

from sklearn.metrics import classification_report


def labels(n=200, classes=10):
    truth = [(i * 7 + (i * i) % 13) % classes for i in range(n)]
    pred = [t if i % 3 else (i * i + 3) % classes for i, t in enumerate(truth)]
    pred = [p if p != 9 else 8 for p in pred]  # class 9 is never predicted
    return truth, pred


def one_cycle(total, max_lr, pct_start, div, final_div, anneal, base_m, max_m):
    def cos(start, end, pct):
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def lin(start, end, pct):
        return (end - start) * pct + start

    f = cos if anneal == "cos" else lin
    initial = max_lr / div
    phases = [
        dict(end_step=float(pct_start * total) - 1, start_lr=initial, end_lr=max_lr, start_m=max_m, end_m=base_m),
        dict(end_step=total - 1, start_lr=max_lr, end_lr=initial / final_div, start_m=base_m, end_m=max_m),
    ]
    lrs, moms = [], []
    for step in range(total):
        start_step = 0
        for i, ph in enumerate(phases):
            end_step = ph["end_step"]
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                lrs.append(f(ph["start_lr"], ph["end_lr"], pct))
                moms.append(f(ph["start_m"], ph["end_m"], pct))
                break
            start_step = ph["end_step"]
    return lrs, moms


def step_lr(base, epochs, step_size, gamma):
    lrs, lr = [], base
    for epoch in range(epochs):
        if epoch != 0 and epoch % step_size == 0:
            lr *= gamma
        lrs.append(lr)
    return lrs


def cosine(base, epochs, eta_min):
    # CosineAnnealingLR.get_lr, recursive form, T_max = epochs.
    lrs, lr, t_max = [], base, epochs
    for epoch in range(epochs):
        if epoch == 0:
            pass
        elif (epoch - 1 - t_max) % (2 * t_max) == 0:
            lr = lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        else:
            lr = (1 + math.cos(math.pi * epoch / t_max)) / (1 + math.cos(math.pi * (epoch - 1) / t_max)) * (lr - eta_min) + eta_min
        lrs.append(lr)
    return lrs


truth, pred = labels()
names = [f"class{i}" for i in range(10)]
report = classification_report(truth, pred, labels=list(range(10)), target_names=names, zero_division=0, output_dict=True)
text = classification_report(truth, pred, labels=list(range(10)), target_names=names, zero_division=0)
lin_lrs, lin_moms = one_cycle(6 * 7, 1e-3, 0.3, 25.0, 1e4, "linear", 0.85, 0.95)
cos_lrs, cos_moms = one_cycle(5 * 11, 2e-3, 0.25, 10.0, 100.0, "cos", 0.8, 0.9)
print(json.dumps({
    "report": report,
    "report_text": text,
    "one_cycle_linear": {"epochs": 6, "steps_per_epoch": 7, "lr": lin_lrs, "momentum": lin_moms},
    "one_cycle_cos": {"epochs": 5, "steps_per_epoch": 11, "lr": cos_lrs, "momentum": cos_moms},
    "step_lr": step_lr(5e-4, 35, 10, 0.5),
    "cosine": cosine(0.1, 20, 1e-3),
}, indent=1))
