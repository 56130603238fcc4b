import BasinNN
