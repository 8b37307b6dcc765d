import torch
import torch.nn as nn
# Define devices
device0 = torch.device("cuda:0")
device1 = torch.device("cuda:1")
class SimpleMPModel(nn.Module):
    def __init__(self):
        super().__init__()
        # First part → GPU 0
        self.layer1 = nn.Linear(1000, 2000).to(device0)
        self.relu1 = nn.ReLU().to(device0)
        # Second part → GPU 1
        self.layer2 = nn.Linear(2000, 1000).to(device1)
        self.relu2 = nn.ReLU().to(device1)
    def forward(self, x):
        # Move input to GPU 0
        x = x.to(device0)
        # Forward on GPU 0
        x = self.layer1(x)
        x = self.relu1(x)
        # Move to GPU 1 ← KEY STEP
        print("Before move:", x.device)
        x = x.to(device1)
        print("After move:", x.device)
        # Forward on GPU 1
        x = self.layer2(x)
        x = self.relu2(x)
        return x
# Test
model = SimpleMPModel()
x = torch.randn(32, 1000)
output = model(x)
print(output.device)
import torch.optim as optim
model = SimpleMPModel()
optimizer = optim.SGD(model.parameters(), lr=0.01)
loss_fn = nn.MSELoss()
for step in range(5):
    x = torch.randn(32, 1000)
    y = torch.randn(32, 1000).to(device1) # target on last GPU
    output = model(x)
    loss = loss_fn(output, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(f"Step {step}, Loss: {loss.item():.4f}")
import time
start = time.time()
output = model(x)
torch.cuda.synchronize()
end = time.time()
print("Forward time:", end - start)
