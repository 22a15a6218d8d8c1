// Central finite differences of a float64 loss with respect to every element of one array, which
// the loss reads (through a closure) while each element is nudged by ±h.
export function centralDifferences(arr: Float64Array, loss: () => number, h = 1e-6): Float64Array {
  return Float64Array.from(arr, (_, i) => {
    const keep = arr[i];
    arr[i] = keep + h;
    const up = loss();
    arr[i] = keep - h;
    const down = loss();
    arr[i] = keep;
    return (up - down) / (2 * h);
  });
}
