"""Synthetic, ImageNet-like workload for INVERT (deterministic, fixed seed).

Concept labels (N x C, bool, multi-label) are built like the INVERT ImageNet setup:
  * "leaf" classes: every sample has exactly one leaf class (like the 1000 ImageNet
    classes), with non-uniform (Dirichlet) class frequencies;
  * "hypernym" concepts: unions (OR) of random groups of leaves (like the 473 WordNet
    hypernyms INVERT adds), some of them nested (hypernym of hypernyms);
  * "attribute" concepts: independent multi-label flags whose rate depends on the
    leaf class (e.g. a watermark-like artifact that co-occurs with a few classes).
Neuron activations (N x K, float32) are ReLU(noise + sum of weighted ground-truth
formula masks), i.e. nonnegative, many exact zeros (ties), range roughly [0, 8]
(outside [0, 1], so torchmetrics applies a sigmoid before ranking; see README).

Every quantity depends only on (N, C, K, seed).  Usage:
    python gen_data.py --N 10000 --C 50 --K 16 --seed 0 --out data.npz
"""

import argparse
import json

import numpy as np


def concept_names(C):
    return ["c%03d" % i for i in range(C)]


def make_data(N=10000, C=50, K=16, seed=0):
    rng = np.random.default_rng(seed)
    n_leaf = max(2, int(round(0.72 * C)))
    n_attr = max(1, int(round(0.08 * C)))
    n_hyper = C - n_leaf - n_attr
    assert n_hyper >= 1, "C too small"

    # ---- leaf classes (one per sample, non-uniform frequencies)
    p = rng.dirichlet(np.full(n_leaf, 2.0))
    leaf = rng.choice(n_leaf, size=N, p=p)
    L = np.zeros((N, C), dtype=bool)
    L[np.arange(N), leaf] = True

    # ---- hypernyms: unions of leaf groups; later ones may include earlier hypernyms
    hyper_members = []  # list of leaf index sets
    for h in range(n_hyper):
        col = n_leaf + h
        size = int(rng.integers(2, 7))
        members = set(rng.choice(n_leaf, size=size, replace=False).tolist())
        if h >= 2 and rng.random() < 0.3:  # nest an earlier hypernym
            members |= hyper_members[int(rng.integers(0, h))]
        hyper_members.append(members)
        L[:, col] = np.isin(leaf, sorted(members))

    # ---- attributes: class-dependent Bernoulli flags
    for a in range(n_attr):
        col = n_leaf + n_hyper + a
        base = rng.uniform(0.01, 0.05)
        rate = np.full(n_leaf, base)
        hot = rng.choice(n_leaf, size=max(1, n_leaf // 10), replace=False)
        rate[hot] = rng.uniform(0.3, 0.7, size=hot.size)
        L[:, col] = rng.random(N) < rate[leaf]

    names = concept_names(C)

    # ---- neurons with compositional ground truth
    templates = ["single", "and_not", "or", "and_attr", "or_and_not", "hyper", "noise", "graded"]
    A = np.zeros((N, K), dtype=np.float64)
    truth = []
    col = lambda i: L[:, i]
    for k in range(K):
        t = templates[k % len(templates)]
        strength = rng.uniform(1.5, 3.5)
        noise = rng.normal(0.0, 1.0, size=N)
        offset = rng.uniform(-0.5, 0.5)
        if t == "single":
            i = int(rng.integers(0, n_leaf))
            m = col(i)
            f = names[i]
        elif t == "and_not":
            h = int(rng.integers(0, n_hyper))
            mem = sorted(hyper_members[h])
            j = mem[int(rng.integers(0, len(mem)))]
            m = col(n_leaf + h) & ~col(j)
            f = "%s & ~%s" % (names[n_leaf + h], names[j])
        elif t == "or":
            i, j = rng.choice(n_leaf, size=2, replace=False)
            m = col(i) | col(j)
            f = "%s | %s" % (names[i], names[j])
        elif t == "and_attr":
            a = n_leaf + n_hyper + int(rng.integers(0, n_attr))
            h = n_leaf + int(rng.integers(0, n_hyper))
            m = col(a) & col(h)
            f = "%s & %s" % (names[a], names[h])
        elif t == "or_and_not":
            i, j = rng.choice(n_leaf, size=2, replace=False)
            a = n_leaf + n_hyper + int(rng.integers(0, n_attr))
            m = (col(i) | col(j)) & ~col(a)
            f = "(%s | %s) & ~%s" % (names[i], names[j], names[a])
        elif t == "hyper":
            h = int(rng.integers(0, n_hyper))
            m = col(n_leaf + h)
            f = names[n_leaf + h]
            strength *= 0.6
        elif t == "noise":
            m = np.zeros(N, dtype=bool)
            f = "<none>"
        else:  # graded: leaf i strong, its hypernym weak
            h = int(rng.integers(0, n_hyper))
            mem = sorted(hyper_members[h])
            i = mem[int(rng.integers(0, len(mem)))]
            m = col(i)
            f = "%s (+0.4*%s)" % (names[i], names[n_leaf + h])
            noise = noise + 0.4 * strength * col(n_leaf + h)
        A[:, k] = np.maximum(0.0, offset + noise + strength * m)
        truth.append(
            {
                "neuron": k,
                "template": t,
                "planted": f,
                "strength": float(strength),
                "support": float(m.mean()),
            }
        )
    A = A.astype(np.float32)
    meta = {
        "N": N,
        "C": C,
        "K": K,
        "seed": seed,
        "n_leaf": n_leaf,
        "n_hyper": n_hyper,
        "n_attr": n_attr,
        "concept_names": names,
        "hyper_members": [sorted(int(x) for x in s) for s in hyper_members],
        "planted": truth,
    }
    return A, L, meta


def save(path, A, L, meta):
    np.savez_compressed(
        path,
        activations=A,
        labels=L,
        concept_names=np.array(meta["concept_names"]),
        meta=np.array(json.dumps(meta)),
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, default=10000)
    ap.add_argument("--C", type=int, default=50)
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="data.npz")
    a = ap.parse_args()
    A, L, meta = make_data(a.N, a.C, a.K, a.seed)
    save(a.out, A, L, meta)
    print(
        "saved",
        a.out,
        A.shape,
        L.shape,
        "label prevalence min/max %.4f/%.4f" % (L.mean(0).min(), L.mean(0).max()),
    )
    for t in meta["planted"]:
        print(t)
