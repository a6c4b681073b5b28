"""Users' own nn.Modules, written the way tutorials write them, for export/from_module.py's tests."""

# ruff: noqa: RUF059  (tutorial style: unpacked results left unused, as users write them)

from __future__ import annotations

import torch
from torch import nn


class RNNClassifier(nn.Module):  # issue 6, verbatim
    def __init__(self, vocab_size, embed_dim, hidden_dim, num_classes, num_layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.rnn = nn.RNN(input_size=embed_dim, hidden_size=hidden_dim, num_layers=num_layers,
                          batch_first=True, dropout=0.3, bidirectional=True)
        self.classifier = nn.Linear(hidden_dim * 2, num_classes)
    def forward(self, x):
        embedded = self.embedding(x)
        output, hidden = self.rnn(embedded)
        final_hidden = output[:, -1, :]
        return self.classifier(final_hidden)


class FixedRNNClassifier(nn.Module):
    """The usual fix of RNNClassifier: each direction's final state (maps to a last_step head)."""

    def __init__(self, vocab_size, embed_dim, hidden_dim, num_classes, num_layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.rnn = nn.RNN(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True, bidirectional=True,
                          nonlinearity="relu")
        self.classifier = nn.Linear(hidden_dim * 2, num_classes)

    def forward(self, x):
        output, hidden = self.rnn(self.embedding(x))
        return self.classifier(torch.cat((hidden[-2], hidden[-1]), dim=1))


class LSTMTagger(nn.Module):
    """Per-token tags, time-major (batch_first=False): takes (T, B) ids, returns (T, B, tags) log-free scores."""

    def __init__(self, vocab_size=30, embed_dim=8, hidden_dim=10, tagset_size=5):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=2)
        self.dropout = nn.Dropout(0.2)
        self.hidden2tag = nn.Linear(hidden_dim, tagset_size)

    def forward(self, sentence):
        embeds = self.word_embeddings(sentence)
        lstm_out, _ = self.lstm(embeds)
        return torch.softmax(self.hidden2tag(self.dropout(lstm_out)), dim=-1)


class GRULastHidden(nn.Module):
    """Dense input, no biases anywhere, hidden[-1] head, an explicit zero initial state."""

    def __init__(self, features=4, hidden=9, classes=3):
        super().__init__()
        self.hidden = hidden
        self.gru = nn.GRU(features, hidden, num_layers=2, batch_first=True, bias=False)
        self.fc = nn.Linear(hidden, classes, bias=False)

    def forward(self, x):
        h0 = torch.zeros(2, x.size(0), self.hidden)
        _, h_n = self.gru(x, h0)
        return self.fc(h_n[-1])


class DenseLSTMClassifier(nn.Module):
    """Dense sensor input, last step of the output, sigmoid (binary / multi-label)."""

    def __init__(self, features=6, hidden=12, out=2):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return torch.sigmoid(self.fc(out[:, -1, :]))


class ConvFrontEnd(nn.Module):
    """Unsupported: a Conv1d in front of the recurrent layer."""

    def __init__(self, features=4, hidden=8, classes=3):
        super().__init__()
        self.conv = nn.Conv1d(features, features, kernel_size=3, padding=1)
        self.rnn = nn.GRU(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class MeanPooled(nn.Module):
    """Unsupported: mean-pooling the outputs over time."""

    def __init__(self, vocab=20, embed=6, hidden=8, classes=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.lstm(self.embedding(x))
        return self.fc(out.mean(dim=1))


class Projected(nn.Module):
    """Unsupported: an LSTM with proj_size."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, proj_size=4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class Normed(nn.Module):
    """Unsupported: LayerNorm between the recurrent layer and the head."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 8, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(self.norm(h[-1]))


# -- more patterns (small, for the mapping rules) ----------------------------------------------------------------
H = 5


class TransposedTimeMajor(nn.Module):
    """(B, T, F) input transposed into a batch_first=False LSTM; reads out[-1] (last_step)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, H)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        out, _ = self.lstm(x.transpose(0, 1))
        return self.fc(out[-1])


class ChainedBackwardOnly(nn.Module):
    """A GRU feeding a bidirectional RNN; the head reads h_n[-1], the backward direction only."""

    def __init__(self):
        super().__init__()
        self.first = nn.GRU(3, H, batch_first=True)
        self.second = nn.RNN(H, H, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        out, _ = self.first(x)
        _, h = self.second(out)
        return self.fc(h[-1])


class FinalSlices(nn.Module):
    """Each direction's final state from output slices, then softmax (last_step)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * H, 2)

    def forward(self, x):
        out, _ = self.gru(x)
        return torch.softmax(self.fc(torch.cat((out[:, -1, :H], out[:, 0, H:]), dim=1)), dim=-1)


class ZeroInitialState(nn.Module):
    """An LSTM given explicit zero (h0, c0), as tutorials do."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        h0 = torch.zeros(1, x.size(0), H).to(x.device)
        c0 = torch.zeros(1, x.size(0), H).to(x.device)
        out, _ = self.lstm(x, (h0, c0))
        return self.fc(out[:, -1, :])


class FirstLayerState(nn.Module):
    """Unsupported: the head reads layer 0's final state of a 2-layer GRU."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, num_layers=2, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(h[0])


class ReluBeforeHead(nn.Module):
    """Unsupported: an activation between the recurrent state and the head."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(torch.relu(h[-1]))


class CellStateHead(nn.Module):
    """Unsupported: the head reads the LSTM's cell state."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x):
        _, (h, c) = self.lstm(x)
        return self.fc(c[-1])
