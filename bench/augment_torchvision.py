# The reference for CarStudio's augmentation benchmark: the original's training transforms in
# torchvision/PIL (RandomResizedCrop 224 scale 0.8-1.0 square, flip, ColorJitter 0.4/0.4/0.4,
# ToTensor) over the same files, with a DataLoader of N worker processes. Prints one JSON line.
import json, os, resource, sys, time
import torch
from PIL import Image
from torchvision import transforms as T

folder, workers = sys.argv[1], int(sys.argv[2])
files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith('.jpg'))
tf = T.Compose([T.RandomResizedCrop(224, scale=(0.8, 1.0), ratio=(1.0, 1.0)), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4), T.ToTensor()])

class DS(torch.utils.data.Dataset):
    def __len__(self):
        return len(files) * 2
    def __getitem__(self, i):
        return tf(Image.open(files[i % len(files)]).convert('RGB'))

torch.set_num_threads(1)
dl = torch.utils.data.DataLoader(DS(), batch_size=64, num_workers=workers, prefetch_factor=2 if workers else None)
for i in range(min(128, len(files))):
    tf(Image.open(files[i]).convert('RGB'))
t0 = time.perf_counter()
c0 = time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
n = 0
for b in dl:
    n += b.shape[0]
s = time.perf_counter() - t0
del dl  # joins the worker processes, so their CPU time is counted below
ch = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = time.process_time() + ch.ru_utime + ch.ru_stime - c0
print(json.dumps({'images': n, 'seconds': s, 'imagesPerSec': n / s, 'workers': workers, 'cpuMsPerImage': cpu * 1000 / n}))
