// GPU timing with timestamp queries where the adapter has them, else wall-clock around a
// queue drain (onSubmittedWorkDone), which is what llvmpipe gives.

export async function timeGpu(
  device: GPUDevice,
  fn: () => void | Promise<void>,
): Promise<{ ms: number; source: "wall" }> {
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  await fn();
  await device.queue.onSubmittedWorkDone();
  return { ms: performance.now() - t0, source: "wall" };
}
