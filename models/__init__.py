"""The paper's models on minigrad: MLP, CNN1D/2D/3D, Elman RNN, LSTM and a small BERT, each a
classifier or an auto-encoder; ``build_model`` builds any of them by name."""
from .bert import BERT
from .cnn import CNN1D, CNN2D, CNN3D
from .factory import build_model
from .mlp import MLP
from .options import ACTIVATIONS, ARCHITECTURES, TASKS, hidden_sizes
from .recurrent import LSTM, ElmanRNN, UnrolledRNN

__all__ = ["MLP", "CNN1D", "CNN2D", "CNN3D", "ElmanRNN", "LSTM", "UnrolledRNN", "BERT", "build_model",
           "hidden_sizes", "ARCHITECTURES", "TASKS", "ACTIVATIONS"]
