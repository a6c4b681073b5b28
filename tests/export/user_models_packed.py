"""Users' forward(x, lengths) modules with packed sequences, for export/module_packing.py's tests."""

# ruff: noqa: RUF059  (tutorial style: unpacked results left unused, as users write them)

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tests.export.user_models import H


class PackedTagger(nn.Module):
    """A tagger over padded token batches: pack (unsorted), LSTM, pad back to the input's length, per-step head."""

    def __init__(self, vocab=30, embed=6, hidden=H, tags=4):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, tags)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(self.embedding(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return self.fc(out)


class PackedBiGRUClassifier(nn.Module):
    """Sorted batches (enforce_sorted=True), 2-layer bidirectional GRU, each direction's final state from h_n."""

    def __init__(self, vocab=30, embed=6, hidden=H, classes=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(x), lengths, batch_first=True)
        _, h_n = self.gru(packed)
        return torch.softmax(self.fc(torch.cat((h_n[-2], h_n[-1]), dim=1)), dim=1)


class PackedTimeMajor(nn.Module):
    """Dense (T, B, F) input, batch_first=False throughout, padded to the longest sequence (no total_length)."""

    def __init__(self, features=3, hidden=H, out=2):
        super().__init__()
        self.rnn = nn.RNN(features, hidden)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x, lengths=None):
        out, _ = self.rnn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        out, _ = pad_packed_sequence(out)
        return self.fc(out)


class PackedStacked(nn.Module):
    """Lengths packed as a list (.tolist()), one LSTM's packed output straight into a second; h_n[-1]."""

    def __init__(self, features=3, hidden=H, out=2):
        super().__init__()
        self.first = nn.LSTM(features, hidden, batch_first=True)
        self.second = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x, seq_lengths):
        packed = pack_padded_sequence(x, seq_lengths.tolist(), batch_first=True, enforce_sorted=False)
        out, _ = self.first(packed)
        _, (h, c) = self.second(out)
        return torch.sigmoid(self.fc(h[-1]))


class PackedRepacked(nn.Module):
    """Pad, dropout and pack again between two GRUs; the per-step head reads the second one's padded output."""

    def __init__(self, features=3, hidden=H, out=2):
        super().__init__()
        self.first = nn.GRU(features, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.3)
        self.second = nn.GRU(2 * hidden, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x, lengths):
        out, _ = self.first(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True)
        out = self.dropout(out)
        out, _ = self.second(pack_padded_sequence(out, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.fc(out)


class OptionalLengths(nn.Module):
    """Lengths optional: packs when given, runs the padded batch as is otherwise."""

    def __init__(self, features=3, hidden=H, out=2):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x, lengths=None):
        if lengths is not None:
            x = pack_padded_sequence(x, lengths.to("cpu"), batch_first=True, enforce_sorted=False)
        _, h = self.gru(x)
        return self.fc(h[-1])


class MaskedMean(nn.Module):
    """Unsupported: the second argument is a mask multiplied into the output."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, mask):
        out, _ = self.gru(x)
        return self.fc(out * mask.unsqueeze(-1))


class PackedLastPadded(nn.Module):
    """Unsupported: output[:, -1] of a padded output is padding for every shorter sequence."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, lengths):
        out, _ = self.gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True)
        return self.fc(out[:, -1])


class PackedThenUnpacked(nn.Module):
    """Unsupported: the second GRU runs over the first one's padding (its input is not packed)."""

    def __init__(self):
        super().__init__()
        self.first = nn.GRU(3, H, batch_first=True)
        self.second = nn.GRU(H, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, lengths):
        out, _ = self.first(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True)
        _, h = self.second(out)
        return self.fc(h[-1])


class LengthsGather(nn.Module):
    """Unpacked, forward-only: each sequence's last true step gathered by index (lengths - 1)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, num_layers=2, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, lengths):
        out, _ = self.gru(x)
        return self.fc(out[torch.arange(x.size(0)), lengths - 1])


class PackedGathered(nn.Module):
    """Packed, time-major: pad, then each sequence's last true step, output[lengths - 1, arange(B)]."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, H)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, lengths):
        out, _ = self.lstm(pack_padded_sequence(x, lengths, enforce_sorted=False))
        out, _ = pad_packed_sequence(out)
        return torch.softmax(self.fc(out[(lengths - 1).long(), torch.arange(x.size(1))]), dim=-1)


class BidirectionalGathered(nn.Module):
    """Unsupported: an unpacked bidirectional GRU (its backward direction runs over the padding) gathered by
    lengths."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, lengths):
        out, _ = self.gru(x)
        return self.fc(out[torch.arange(x.size(0)), lengths - 1, :H])


class MaskArgument(nn.Module):
    """Unsupported: the lengths used to build a mask."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, lengths):
        out, _ = self.gru(x)
        mask = torch.arange(x.size(1))[None, :] < lengths[:, None]
        return self.fc(out * mask.unsqueeze(-1))


class ThreeInputs(nn.Module):
    """Unsupported: forward() needs a third input."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, lengths, speaker):
        _, h = self.gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        return self.fc(h[-1]) + speaker


class StateArgument(nn.Module):
    """Unsupported: the second argument is an initial state."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, H, batch_first=True)
        self.fc = nn.Linear(H, 2)

    def forward(self, x, h0):
        _, h = self.gru(x, h0)
        return self.fc(h[-1])
