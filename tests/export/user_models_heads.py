"""Users' heads: log_softmax outputs and dense layers between the recurrent state and the output, for
export/module_heads.py's tests."""



from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tests.export.user_models import H


class NLLTagger(nn.Module):
    """The tutorial tagger written for NLLLoss: per-token log-probabilities, time-major."""

    def __init__(self, vocab=30, embed=6, hidden=H, tags=4):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden)
        self.hidden2tag = nn.Linear(hidden, tags)

    def forward(self, sentence):
        lstm_out, _ = self.lstm(self.word_embeddings(sentence))
        return F.log_softmax(self.hidden2tag(lstm_out), dim=2)


class LogSoftmaxVariants(nn.Module):
    """log_softmax as torch.log_softmax, Tensor.log_softmax or nn.LogSoftmax, over -1 or the last axis by number."""

    def __init__(self, form="torch", hidden=H, classes=3):
        super().__init__()
        self.form = form
        self.gru = nn.GRU(3, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        _, h = self.gru(x)
        logits = self.fc(h[-1])
        if self.form == "torch":
            return torch.log_softmax(logits, dim=-1)
        if self.form == "method":
            return logits.log_softmax(-1)
        return self.log_softmax(logits)


class MLPClassifier(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear on the final state, as most classifiers are written."""

    def __init__(self, vocab=30, embed=6, hidden=H, classes=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.fc1 = nn.Linear(2 * hidden, 8)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(8, classes)

    def forward(self, x):
        _, h = self.gru(self.embedding(x))
        return self.fc2(self.dropout(self.relu(self.fc1(torch.cat((h[-2], h[-1]), dim=1)))))


class GELUSequentialTagger(nn.Module):
    """An every-step nn.Sequential head: GELU (exact), GELU (tanh), Identity, then softmax."""

    def __init__(self, features=3, hidden=H, out=4):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, 7), nn.GELU(), nn.Linear(7, 6), nn.GELU(approximate="tanh"),
                                  nn.Identity(), nn.Linear(6, out), nn.Softmax(dim=-1))

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


class FunctionalHead(nn.Module):
    """Dense layers through functional calls: F.relu, torch.tanh, x.relu(), torch.sigmoid, F.gelu(tanh), and a
    Linear -> Linear with nothing between; sigmoid output (multi-label)."""

    def __init__(self, features=3, hidden=H, out=2):
        super().__init__()
        self.rnn = nn.RNN(features, hidden, batch_first=True)
        self.layers = nn.ModuleList(nn.Linear(hidden if k == 0 else 6, 6) for k in range(6))
        self.out = nn.Linear(6, out)

    def forward(self, x):
        out, _ = self.rnn(x)
        v = out[:, -1]
        v = F.relu(self.layers[0](v))
        v = torch.tanh(self.layers[1](v))
        v = self.layers[2](v).relu()
        v = torch.sigmoid(self.layers[3](v))
        v = F.gelu(self.layers[4](v), approximate="tanh")
        v = self.layers[5](v)
        return torch.sigmoid(self.out(v))


class PackedNLLTagger(nn.Module):
    """Packed sequences, a Linear -> Tanh -> Linear head on every step, log_softmax (NLLLoss training)."""

    def __init__(self, vocab=30, embed=6, hidden=H, tags=4):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(2 * hidden, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, tags))

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.embedding(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return F.log_softmax(self.head(out), dim=-1)


class SoftplusBetween(nn.Module):
    """Unsupported: Softplus between two linear layers."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.head = nn.Sequential(nn.Linear(H, 6), nn.Softplus(), nn.Linear(6, 2))

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])


class LeakyReluBetween(nn.Module):
    """Unsupported: F.leaky_relu between two linear layers."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc1 = nn.Linear(H, 6)
        self.fc2 = nn.Linear(6, 2)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc2(F.leaky_relu(self.fc1(h[-1])))


class TimeSoftmax(nn.Module):
    """Unsupported: softmax over the time axis of a per-step output."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        out, _ = self.gru(x)
        return torch.log_softmax(self.fc(out), dim=1)


class EndsInRelu(nn.Module):
    """Unsupported: the output is ReLU of the last linear layer."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        _, h = self.gru(x)
        return torch.relu(self.fc(h[-1]))


class SelfAttentive(nn.Module):
    """Unsupported: attention over the recurrent outputs."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)
        self.attention = nn.MultiheadAttention(4, 2, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        out, _ = self.gru(x)
        attended, _ = self.attention(out, out, out)
        return self.fc(attended[:, -1])


class NormBetweenLayers(nn.Module):
    """Unsupported: LayerNorm between two recurrent layers (inside the recurrent stack)."""

    def __init__(self):
        super().__init__()
        self.first = nn.LSTM(3, H, batch_first=True)
        self.norm = nn.LayerNorm(H)
        self.second = nn.LSTM(H, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        out, _ = self.first(x)
        _, (h, _) = self.second(self.norm(out))
        return self.fc(h[-1])
