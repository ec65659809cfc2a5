"""Train a bare numlstm.LSTM layer by hand: forward, backward, SGD step.

The task: from a noisy sine wave, predict the next value at every step. The
script prints the loss every 50 iterations and the final error against the
noise floor. Runs in a few seconds on a laptop CPU.
"""

import numpy as np

import numlstm

rng = np.random.default_rng(0)
T, B, H = 60, 16, 24
phase = rng.uniform(0, 2 * np.pi, B)
t = np.arange(T + 1)[:, None] * 0.2 + phase[None, :]
series = np.sin(t) + 0.05 * rng.standard_normal(t.shape)
x = series[:-1, :, None].astype(np.float32)   # (T, B, 1)
y = series[1:, :, None].astype(np.float32)    # the next value

lstm = numlstm.LSTM(1, H, seed=0, forget_bias=1.0)
head = rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), (H, 1)).astype(np.float32)
learning_rate = 0.05

for step in range(301):
    out, _ = lstm(x)                      # (T, B, H)
    pred = out @ head                     # (T, B, 1)
    err = pred - y
    loss = float(np.mean(err ** 2))
    grad_pred = 2 * err / err.size
    grad_head = out.reshape(-1, H).T @ grad_pred.reshape(-1, 1)
    lstm.backward(grad_pred @ head.T)     # fills lstm.grads
    for name, param in lstm.params.items():
        param -= learning_rate * np.clip(lstm.grads[name], -1, 1)
    head -= learning_rate * grad_head
    if step % 50 == 0:
        print(f"step {step:3d}  mse {loss:.4f}")

print(f"final mse {loss:.4f} (noise floor about {2 * 0.05 ** 2:.4f})")
